/**
 * The Lua half of the Redis task queue. Business rules (fencing, retry policy, state changes) run in
 * TypeScript, shared with the memory store; Redis only has to make a change atomic: `COMMIT` writes a new
 * record if its revision is still the one the change was computed from (compare-and-set), keeps the
 * indexes in step and publishes the event in the same step, so no reader ever sees a record without its
 * index entries or an event without its change.
 *
 * Keys under `<prefix>:fleet:` (ARGV carries the prefix; Redis Cluster is not supported, as with BullMQ
 * without hash tags):
 *   task:<id>        hash  r=revision j=record JSON s=state c=capability k=idempotency key q=creation seq
 *   seq              counter for creation order
 *   idem:<key>       idempotency key → task id
 *   all              zset  id → seq (every retained task)
 *   state:<state>    zset  id → seq
 *   queued           zset  id → notBefore (the bound and depth())
 *   queued:<cap>     set   ids queued for one capability
 *   backoff          zset  id → notBefore, queued tasks waiting out a retry delay (nextReadyAt())
 *   finished         zset  id → finishedAt (retention: oldest finished records are dropped)
 *   queues           set   BullMQ queue names in use (every manager checks all of them for stalled jobs)
 *   sess:<session>   string the session table: the worker id holding the session, or `!<worker id>` once that
 *                          worker is gone (lost); expires (PX) once the worker has forgotten the session
 *                          (`sessionBindingTtlMs`: the task's timeout + the worker's TTL and tombstone time)
 *   wsess:<worker>   set    sessions bound to a worker, so a gone worker's sessions are all marked lost at once
 */
import { RedisScript } from '../../store/redis-connection.js';

/**
 * KEYS[1] task key.
 * ARGV: 1 expected revision ('' = create) · 2 record JSON · 3 old state ('' on create) · 4 new state ·
 * 5 capability · 6 notBefore · 7 idempotency key · 8 key prefix (`<prefix>:fleet:`) · 9 task id ·
 * 10 bound on queued tasks ('' = none) · 11 retained finished count · 12 finishedAt ('' = not final) ·
 * 13 backoff score ('' = not in backoff) · 14 event channel · 15 event head ('' = none): the event
 * published is the head, the record JSON (ARGV 2) and a closing `}` ·
 * 16 expected creation seq ('' = not checked; revisions restart when a trimmed id is submitted again)
 * Returns {'ok', revision, seq} | {'stale', revision} | {'exists', id} | {'full', queued}.
 */
export const COMMIT = new RedisScript(
  'fleet-commit',
  `
local key = KEYS[1]
local p = ARGV[8]
local id = ARGV[9]
local oldState, newState = ARGV[3], ARGV[4]
local cur = redis.call('HGET', key, 'r')
local seq
if ARGV[1] == '' then
  if cur then return {'exists', id} end
  if ARGV[7] ~= '' then
    local other = redis.call('GET', p .. 'idem:' .. ARGV[7])
    if other and redis.call('EXISTS', p .. 'task:' .. other) == 1 then return {'exists', other} end
  end
  seq = redis.call('INCR', p .. 'seq')
else
  if cur ~= ARGV[1] then return {'stale', cur or ''} end
  local rawSeq = redis.call('HGET', key, 'q')
  if ARGV[16] ~= '' and rawSeq ~= ARGV[16] then return {'stale', cur} end
  seq = tonumber(rawSeq)
end
if ARGV[10] ~= '' and oldState ~= 'queued' and newState == 'queued' then
  local queued = redis.call('ZCARD', p .. 'queued')
  if queued >= tonumber(ARGV[10]) then return {'full', tostring(queued)} end
end
local rev = (tonumber(cur) or 0) + 1
redis.call('HSET', key, 'r', rev, 'j', ARGV[2], 's', newState, 'c', ARGV[5], 'k', ARGV[7], 'q', seq)
if ARGV[1] == '' then
  redis.call('ZADD', p .. 'all', seq, id)
  if ARGV[7] ~= '' then redis.call('SET', p .. 'idem:' .. ARGV[7], id) end
end
if oldState ~= newState then
  if oldState ~= '' then redis.call('ZREM', p .. 'state:' .. oldState, id) end
  redis.call('ZADD', p .. 'state:' .. newState, seq, id)
end
if newState == 'queued' then
  redis.call('ZADD', p .. 'queued', ARGV[6], id)
  redis.call('SADD', p .. 'queued:' .. ARGV[5], id)
elseif oldState == 'queued' then
  redis.call('ZREM', p .. 'queued', id)
  redis.call('SREM', p .. 'queued:' .. ARGV[5], id)
end
if ARGV[13] ~= '' then
  redis.call('ZADD', p .. 'backoff', ARGV[13], id)
else
  redis.call('ZREM', p .. 'backoff', id)
end
if ARGV[12] ~= '' then
  redis.call('ZADD', p .. 'finished', ARGV[12], id)
  local excess = redis.call('ZCARD', p .. 'finished') - tonumber(ARGV[11])
  if excess > 0 then
    local old = redis.call('ZRANGE', p .. 'finished', 0, excess - 1)
    for _, oid in ipairs(old) do
      local okey = p .. 'task:' .. oid
      local meta = redis.call('HMGET', okey, 's', 'k')
      if meta[1] then redis.call('ZREM', p .. 'state:' .. meta[1], oid) end
      if meta[2] and meta[2] ~= '' and redis.call('GET', p .. 'idem:' .. meta[2]) == oid then
        redis.call('DEL', p .. 'idem:' .. meta[2])
      end
      redis.call('ZREM', p .. 'all', oid)
      redis.call('DEL', okey)
    end
    redis.call('ZREMRANGEBYRANK', p .. 'finished', 0, excess - 1)
  end
else
  redis.call('ZREM', p .. 'finished', id)
end
if ARGV[15] ~= '' then redis.call('PUBLISH', ARGV[14], ARGV[15] .. ARGV[2] .. '}') end
return {'ok', tostring(rev), tostring(seq)}
`,
);

/**
 * For each BullMQ queue (ARGV[3..], each its key prefix `<prefix>:<queue>:`), the job BullMQ would hand
 * out next: a job in `wait` first (BullMQ serves that list before the prioritized set; stalled jobs land
 * there), else the best of the prioritized head and the delayed jobs already due. ARGV[1] = now (ms),
 * ARGV[2] = the Fleet task key prefix. Returns per queue {BullMQ priority, creation seq, job id}, or
 * {-1, 0, ''} when the queue has nothing ready. Reads only; taking the job is BullMQ's moveToActive.
 */
export const PEEK = new RedisScript(
  'fleet-peek',
  `
local now = tonumber(ARGV[1])
local taskPrefix = ARGV[2]
local out = {}
for i = 3, #ARGV do
  local qp = ARGV[i]
  local bestPrio, bestId
  local w = redis.call('LINDEX', qp .. 'wait', -1)
  if w then
    bestPrio, bestId = 0, w
  else
    local head = redis.call('ZRANGE', qp .. 'prioritized', 0, 0, 'WITHSCORES')
    if head[1] then
      bestPrio, bestId = math.floor(tonumber(head[2]) / 0x100000000), head[1]
    end
    local due = redis.call('ZRANGEBYSCORE', qp .. 'delayed', 0, (now + 1) * 0x1000 - 1, 'LIMIT', 0, 50)
    for _, jid in ipairs(due) do
      local prio = tonumber(redis.call('HGET', qp .. jid, 'priority')) or 0
      if bestPrio == nil or prio < bestPrio then bestPrio, bestId = prio, jid end
    end
  end
  if bestId then
    local tid = string.gsub(string.sub(bestId, 3), '~', ':')
    local seq = tonumber(redis.call('HGET', taskPrefix .. tid, 'q')) or 0
    table.insert(out, bestPrio)
    table.insert(out, seq)
    table.insert(out, bestId)
  else
    table.insert(out, -1)
    table.insert(out, 0)
    table.insert(out, '')
  end
end
return out
`,
);

/**
 * Binds a session to the claiming worker, atomically, so two first tasks of one session claimed by two
 * managers at once cannot bind it to two workers.
 * KEYS[1] sess:<session> · KEYS[2] wsess:<worker>.
 * ARGV: 1 worker id · 2 binding TTL (ms) · 3 '1' when a lost binding may be replaced (create-if-missing) ·
 * 4 session id.
 * Returns {'bound'} | {'other', worker id} (bound to another live worker) | {'lost', worker id}.
 */
export const BIND_SESSION = new RedisScript(
  'fleet-bind-session',
  `
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then
  if string.sub(v, 1, 1) ~= '!' then return {'other', v} end
  if ARGV[3] ~= '1' then return {'lost', string.sub(v, 2)} end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[4])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return {'bound'}
`,
);

/**
 * Marks every session still bound to a gone worker lost (the mark keeps the binding's expiry).
 * KEYS[1] wsess:<worker>. ARGV: 1 session key prefix (`<prefix>:fleet:sess:`) · 2 worker id.
 * Returns how many sessions the worker had.
 */
export const LOSE_SESSIONS = new RedisScript(
  'fleet-lose-sessions',
  `
local ids = redis.call('SMEMBERS', KEYS[1])
for _, sid in ipairs(ids) do
  local k = ARGV[1] .. sid
  if redis.call('GET', k) == ARGV[2] then redis.call('SET', k, '!' .. ARGV[2], 'KEEPTTL') end
end
redis.call('DEL', KEYS[1])
return #ids
`,
);
