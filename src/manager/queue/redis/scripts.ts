/**
 * Fleet's Lua in the Redis store: small, and it never writes a BullMQ key. It reads BullMQ's lists to
 * answer what BullMQ has no query for (the bound over all queues, depth per capability, which queue's head
 * is best, the earliest retry) and keeps Fleet's own indexes (`keys.ts`: where a task's job lives, the
 * idempotency keys, the session table) atomic. Every job change is a BullMQ call.
 *
 * Queue prefixes passed in ARGV are `<prefix>:<queue>:`; Redis Cluster is not supported (as with BullMQ
 * without hash tags).
 */
import { RedisScript } from '../../../store/redis-connection.js';

const JOB_KEY_LUA = `
local function jobKey(qp, taskId)
  return qp .. 't_' .. string.gsub(taskId, ':', '~')
end
`;

const QUEUED_LUA = `
local function queuedCount(qp)
  return redis.call('LLEN', qp .. 'wait') + redis.call('ZCARD', qp .. 'prioritized') + redis.call('ZCARD', qp .. 'delayed')
end
`;

/**
 * Reserves a task id (and its idempotency key) for a new job, unless a task with that id or key still
 * has its job, and unless the queued tasks of all queues are at the bound.
 * KEYS: 1 loc · 2 idem · 3 queues · 4 new-queues stream. ARGV: 1 task id · 2 queue · 3 idempotency key ('' = none) ·
 * 4 bound ('' = none) · 5 key prefix `<prefix>:` · 6 the ended queue's name (not counted).
 * Returns {'ok', queued ('' when not counted)} | {'exists', task id} | {'full', queued}.
 */
export const RESERVE = new RedisScript(
  'fleet-reserve',
  `${JOB_KEY_LUA}${QUEUED_LUA}
local p = ARGV[5]
local counted = ''
local function live(taskId)
  local q = redis.call('HGET', KEYS[1], taskId)
  return q and redis.call('EXISTS', jobKey(p .. q .. ':', taskId)) == 1
end
if live(ARGV[1]) then return {'exists', ARGV[1]} end
if ARGV[3] ~= '' then
  local other = redis.call('HGET', KEYS[2], ARGV[3])
  if other and live(other) then return {'exists', other} end
end
if ARGV[4] ~= '' then
  local n = 0
  for _, q in ipairs(redis.call('SMEMBERS', KEYS[3])) do
    if q ~= ARGV[6] then n = n + queuedCount(p .. q .. ':') end
  end
  if n >= tonumber(ARGV[4]) then return {'full', tostring(n)} end
  counted = n
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], ARGV[3], ARGV[1]) end
if redis.call('SADD', KEYS[3], ARGV[2]) == 1 then
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', 1000, '*', 'queue', ARGV[2])
end
return {'ok', tostring(counted)}
`,
);

/**
 * Records which queue holds a task's job (it moved: pinned to a session's worker, re-routed, ended), and
 * announces a queue not seen before so every manager's event reader starts reading its stream at once.
 * KEYS: 1 loc · 2 queues · 3 new-queues stream. ARGV: 1 task id · 2 queue.
 */
export const LOCATE = new RedisScript(
  'fleet-locate',
  `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if redis.call('SADD', KEYS[2], ARGV[2]) == 1 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', 1000, '*', 'queue', ARGV[2])
end
return 1
`,
);

/**
 * Queued jobs (wait, prioritized, delayed) over the given queues, of one capability (the job name) or all.
 * ARGV: 1 capability ('' = all) · 2.. queue prefixes.
 */
export const COUNT_QUEUED = new RedisScript(
  'fleet-count-queued',
  `${QUEUED_LUA}
local n = 0
for i = 2, #ARGV do
  local qp = ARGV[i]
  if ARGV[1] == '' then
    n = n + queuedCount(qp)
  else
    local ids = redis.call('LRANGE', qp .. 'wait', 0, -1)
    for _, id in ipairs(redis.call('ZRANGE', qp .. 'prioritized', 0, -1)) do table.insert(ids, id) end
    for _, id in ipairs(redis.call('ZRANGE', qp .. 'delayed', 0, -1)) do table.insert(ids, id) end
    for _, id in ipairs(ids) do
      if redis.call('HGET', qp .. id, 'name') == ARGV[1] then n = n + 1 end
    end
  end
end
return n
`,
);

/**
 * For each queue (ARGV[2..], prefixes), the job BullMQ would hand out next: one in \`wait\` first (BullMQ
 * serves that list before the prioritized set; stalled jobs land there), else the best of the prioritized
 * head and the delayed jobs already due. ARGV[1] = now (ms). Returns per queue {BullMQ priority, creation
 * time, job id}, or {-1, 0, ''} when it has nothing ready ({-2, 0, ''} when a delayed job is still to come).
 */
export const PEEK = new RedisScript(
  'fleet-peek',
  `
local now = tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV do
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
    table.insert(out, bestPrio)
    table.insert(out, tonumber(redis.call('HGET', qp .. bestId, 'timestamp')) or 0)
    table.insert(out, bestId)
  else
    table.insert(out, redis.call('ZCARD', qp .. 'delayed') > 0 and -2 or -1)
    table.insert(out, 0)
    table.insert(out, '')
  end
end
return out
`,
);

/** The earliest delayed job due after ARGV[1] (ms) over the queues ARGV[2..]: its time, or false. */
export const NEXT_DELAYED = new RedisScript(
  'fleet-next-delayed',
  `
local best
for i = 2, #ARGV do
  local head = redis.call('ZRANGEBYSCORE', ARGV[i] .. 'delayed', '(' .. ((tonumber(ARGV[1]) + 1) * 0x1000 - 1), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  if head[2] then
    local t = math.floor(tonumber(head[2]) / 0x1000)
    if best == nil or t < best then best = t end
  end
end
if best == nil then return false end
return tostring(best)
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
 * KEYS[1] wsess:<worker>. ARGV: 1 session key prefix · 2 worker id. Returns how many sessions it had.
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

/**
 * Forgets index entries whose task has no job any more (BullMQ's retention removed it): a task id in
 * `loc` whose job is gone, an idempotency key whose task id is no longer in `loc`. Only entries a previous
 * round already found dangling (ARGV), so an id reserved a moment before its job is added is not dropped.
 * KEYS: 1 loc · 2 idem. ARGV: 1 key prefix \`<prefix>:\` · 2 number of loc candidates n · then n task ids ·
 * then idempotency keys. Returns how many entries it dropped.
 */
export const FORGET_DANGLING = new RedisScript(
  'fleet-forget-dangling',
  `${JOB_KEY_LUA}
local dropped = 0
local n = tonumber(ARGV[2])
for i = 3, 2 + n do
  local id = ARGV[i]
  local q = redis.call('HGET', KEYS[1], id)
  if q and redis.call('EXISTS', jobKey(ARGV[1] .. q .. ':', id)) == 0 then
    redis.call('HDEL', KEYS[1], id)
    dropped = dropped + 1
  end
end
for i = 3 + n, #ARGV do
  local id = redis.call('HGET', KEYS[2], ARGV[i])
  if id and redis.call('HEXISTS', KEYS[1], id) == 0 then
    redis.call('HDEL', KEYS[2], ARGV[i])
    dropped = dropped + 1
  end
end
return dropped
`,
);
