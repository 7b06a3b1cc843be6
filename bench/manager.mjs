// The user's path, side by side with BullMQ in the same run, each with the same three processes:
//   Fleet:  client process (FleetClient, public API) → manager process → one echo worker process (concurrency 64)
//   BullMQ: client process (Queue.add + waitUntilFinished, QueueEvents) → redis-server → one Worker process
//           (concurrency 64)
// on a no-op echo. Measures sequential round trips (p50/p99) and a closed loop with 64 tasks in flight, over
// HTTP (`POST /api/tasks?wait=1`) and over FleetClient's WebSocket channel; the manager's CPU per task
// (process.cpuUsage() in the manager process) next to redis-server's (INFO cpu), and the client's and the
// worker's (cpuUsage in the client, /proc for the worker) in both phases. Then, as before, failure
// detection (kill -9 of a worker process) and the manager's RSS over many tasks; the in-process
// `executeTask` figure is kept only as a labelled extra line (no user calls Fleet that way).
//
// Build first (`npm run build`), then
//   node bench/manager.mjs [--rounds 2000] [--tasks 20000] [--repeat 1] [--rss 100000] [--dist dist]
//                          [--cpu-prof DIR] [--only http,ws,bullmq,floor] [--skip-failure] [--skip-rss]
// --dist runs another build (e.g. an older commit's) in the same conditions; --cpu-prof writes V8 profiles
// of the manager and worker processes (both phases) and of each client process. REDIS_URL picks the Redis.
import { fork, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { deleteKeys, freePort, sleep, writeCalls } from './lib/support.mjs';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '2000' },
    tasks: { type: 'string', default: '20000' },
    repeat: { type: 'string', default: '1' },
    rss: { type: 'string', default: '100000' },
    dist: { type: 'string', default: 'dist' },
    only: { type: 'string', default: 'http,ws,bullmq,floor' },
    'cpu-prof': { type: 'string' },
    'skip-failure': { type: 'boolean', default: false },
    'skip-rss': { type: 'boolean', default: false },
  },
});
const rounds = Number(args.rounds);
const tasks = Number(args.tasks);
const repeat = Number(args.repeat);
const rssTasks = Number(args.rss);
for (const [name, v, max] of [
  ['rounds', rounds, 100_000],
  ['tasks', tasks, 500_000],
  ['repeat', repeat, 20],
  ['rss', rssTasks, 1_000_000],
]) {
  if (!Number.isInteger(v) || v < 1 || v > max) throw new Error(`--${name} must be an integer in 1..${max}`);
}
const only = new Set(args.only.split(','));
const dist = resolve(args.dist);
const load = (p) => import(pathToFileURL(join(dist, p)).href);
const here = (p) => new URL(p, import.meta.url).pathname;
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const INFLIGHT = 64;
/** Calls each client makes before it measures (bench-client.mjs): connections and the manager's JIT. */
const WARM_UP = 2000;
const token = `bench-${randomUUID()}`;
const profDir = args['cpu-prof'] ? resolve(args['cpu-prof']) : undefined;
const profArgs = (name) =>
  profDir ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${name}.cpuprofile`] : [];
const { FleetClient } = await load('client/fleet-client.js');
const hasWs = FleetClient.prototype.connect !== undefined;

function waitMessage(child, pred) {
  return new Promise((res, rej) => {
    const onMsg = (m) => pred(m) && (child.off('message', onMsg), res(m));
    child.on('message', onMsg);
    child.once('exit', (code) => rej(new Error(`child exited (${code}) before it was ready`)));
  });
}

let clientRuns = 0;
/** Runs one client process; `onWarm` runs when its warm-up is over, before its measured calls begin. */
function runClient(opts, onWarm = async () => undefined) {
  return new Promise((res, rej) => {
    const c = spawn(
      process.execPath,
      [
        ...profArgs(`client-${opts.mode}-${opts.phase}-${clientRuns++}`),
        here('./lib/bench-client.mjs'),
        JSON.stringify({ dist, warmUp: WARM_UP, ...opts }),
      ],
      {
        stdio: ['pipe', 'pipe', 'inherit'],
      },
    );
    let out = '';
    c.stdout.on('data', (d) => {
      out += d;
      if (out.endsWith('{"warm":true}\n')) {
        out = '';
        onWarm().then(
          () => c.stdin.end('go\n'),
          (err) => (c.kill(), rej(err)),
        );
      }
    });
    c.once('exit', (code) =>
      code === 0
        ? res(JSON.parse(out.trim().split('\n').pop()))
        : rej(new Error(`client ${opts.mode} exited ${code}`)),
    );
  });
}

/** The Fleet side: an echo worker process at concurrency 64 and a manager process that dials it. */
async function startFleet(tag) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'fleet-bench-'));
  const cfg = join(dir, 'fleet.yaml');
  writeFileSync(cfg, `echo:\n  max_concurrent_tasks: ${INFLIGHT}\n`);
  const worker = spawn(
    process.execPath,
    [
      ...profArgs(`worker-${tag}`),
      join(dist, 'cli/main.js'),
      'worker',
      'echo',
      '--port',
      String(port),
      '--host',
      '127.0.0.1',
      '--token',
      token,
    ],
    {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, FLEET_CONFIG: cfg, FLEET_LOG_LEVEL: 'error' },
    },
  );
  const manager = fork(here('./lib/bench-manager-proc.mjs'), [dist, `ws://127.0.0.1:${port}/ws`, token], {
    execArgv: profArgs(`manager-${tag}`),
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const { url } = await waitMessage(manager, (m) => m.url);
  const cpu = async () => (manager.send('cpu'), (await waitMessage(manager, (m) => m.cpu)).cpu);
  return {
    url,
    cpu,
    managerPid: manager.pid,
    workerPid: worker.pid,
    async stop() {
      manager.send('stop');
      await new Promise((r) => manager.once('exit', r));
      // SIGTERM, not SIGKILL: the worker drains and exits, so --cpu-prof writes its profile.
      worker.kill('SIGTERM');
      await new Promise((r) => worker.once('exit', r));
    },
  };
}

async function redisCpu(r) {
  const info = await r.info('cpu');
  const get = (k) => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)[1]);
  return (get('used_cpu_user') + get('used_cpu_sys')) * 1e6; // µs
}

/** CPU (user + system) another process has used so far, in µs, from /proc (clock ticks of 10 ms); Linux only. */
function procCpu(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) * 1e4;
  } catch {
    return NaN;
  }
}

/**
 * One side's figures: seq (p50, p99) and loop (tasks/s) from its client process, and the CPU per task of the
 * client, the broker and the worker process in each phase, all over the measured calls only (the client's
 * warm-up calls are sequential and cost several times a closed-loop call: counted in, they made the loop's
 * figures a mix of both regimes).
 * In the sequential phase also the write syscalls per task of each process: every socket write wakes the
 * process it sends to, so their sum is the hops a round trip takes (the broker's include its replies to
 * writes that are not on the round trip's path, such as BullMQ's `add` reply).
 */
async function measure(runPhase, brokerCpu, workerPid, brokerPid) {
  const cpuAt = async () => ({ broker: await brokerCpu(), worker: procCpu(workerPid) });
  const writesAt = () => ({ broker: writeCalls(brokerPid), worker: writeCalls(workerPid) });
  let c0, w0, c2;
  const seq = await runPhase({ phase: 'seq', rounds }, async () => {
    c0 = await cpuAt();
    w0 = writesAt();
  });
  const w1 = writesAt();
  const c1 = await cpuAt();
  const loop = await runPhase({ phase: 'loop', tasks, inflight: INFLIGHT }, async () => {
    c2 = await cpuAt();
  });
  const c3 = await cpuAt();
  const per = (a, b, n) => ({ broker: (b.broker - a.broker) / n, worker: (b.worker - a.worker) / n });
  const seqCpu = { client: seq.clientCpu, ...per(c0, c1, rounds) };
  const loopCpu = { client: loop.clientCpu, ...per(c2, c3, tasks) };
  const seqWrites = {
    client: seq.clientWrites,
    broker: (w1.broker - w0.broker) / rounds,
    worker: (w1.worker - w0.worker) / rounds,
  };
  return {
    p50: seq.p50,
    p99: seq.p99,
    perSecond: loop.perSecond,
    cpuPerTask: loopCpu.broker,
    seqCpu,
    loopCpu,
    seqWrites,
  };
}

async function fleetRun(mode, i) {
  const f = await startFleet(`${mode}-${i}`);
  try {
    const fleetCpu = async () => {
      const c = await f.cpu();
      return c.user + c.system;
    };
    return await measure(
      (o, onWarm) => runClient({ mode, url: f.url, token, ...o }, onWarm),
      fleetCpu,
      f.workerPid,
      f.managerPid,
    );
  } finally {
    await f.stop();
  }
}

/**
 * The floor: the channel's three processes and four hops with no Fleet code (lib/ws-relay.mjs), each frame
 * passed on as it came. Its p50 is what any Node broker on this path starts from.
 */
async function floorRun() {
  const relay = (role, o) =>
    fork(here('./lib/ws-relay.mjs'), [role, JSON.stringify(o)], {
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    });
  const worker = relay('worker', {});
  const { port: workerPort } = await waitMessage(worker, (m) => m.port);
  const broker = relay('broker', { workerPort });
  const { port: brokerPort } = await waitMessage(broker, (m) => m.port);
  try {
    const client = relay('client', { brokerPort, rounds, warmUp: WARM_UP });
    let out = '';
    client.stdout.on('data', (d) => (out += d));
    const code = await new Promise((r) => client.once('exit', r));
    if (code !== 0) throw new Error(`relay client exited ${code}`);
    return JSON.parse(out.trim().split('\n').pop());
  } finally {
    for (const p of [broker, worker]) {
      p.kill('SIGKILL');
      await new Promise((r) => (p.exitCode !== null ? r() : p.once('exit', r)));
    }
  }
}

async function bullRun(i) {
  const prefix = `fleet-bench-${randomUUID().slice(0, 8)}`;
  const w = fork(here('./lib/bench-bull-worker.mjs'), [redisUrl, prefix, 'bench', String(INFLIGHT)], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const r = new Redis(redisUrl);
  try {
    await waitMessage(w, (m) => m.ready);
    const redisPid = Number(/process_id:(\d+)/.exec(await r.info('server'))?.[1]);
    return await measure(
      (o, onWarm) => runClient({ mode: 'bullmq', redisUrl, prefix, ...o }, onWarm),
      () => redisCpu(r),
      w.pid,
      redisPid,
    );
  } finally {
    w.send('stop');
    await new Promise((res) => w.once('exit', res));
    await deleteKeys(redisUrl, `${prefix}:*`);
    r.disconnect();
    void i;
  }
}

/** The old figure: executeTask inside the manager's process, echo worker in the same process too. */
async function inProcess() {
  const { parseConfig } = await load('config/load.js');
  const { WorkerManager } = await load('manager/manager.js');
  const { WorkerServer } = await load('workers/common/server.js');
  const { createEchoKind } = await load('workers/echo/index.js');
  const silent = pino({ level: 'silent' });
  const config = parseConfig({
    manager: { port: 0, log_level: 'silent', queue: { max_size: 1_000_000 } },
    echo: { port: 0, max_concurrent_tasks: INFLIGHT },
  });
  const w = new WorkerServer({ kind: createEchoKind(config.echo), config: config.echo, logger: silent });
  await w.start();
  const m = new WorkerManager(config, { logger: silent });
  await m.start();
  await m.registerWorker({ endpoint: w.endpoint });
  const times = [];
  for (let i = 0; i < rounds + 200; i++) {
    const t0 = performance.now();
    await m.executeTask({ capability: 'echo', payload: { i } });
    if (i >= 200) times.push(performance.now() - t0);
  }
  await m.stop();
  await w.stop();
  times.sort((a, b) => a - b);
  return { p50: times[Math.floor(times.length / 2)], p99: times[Math.floor(times.length * 0.99)] };
}

async function failureDetection() {
  const { parseConfig } = await load('config/load.js');
  const { WorkerManager } = await load('manager/manager.js');
  const config = parseConfig({
    manager: { port: 0, log_level: 'silent', health: { heartbeat_interval: '250ms', missed_heartbeats: 4 } },
  });
  const ports = [await freePort(), await freePort()];
  const procs = ports.map((port) =>
    spawn(process.execPath, [join(dist, 'cli/main.js'), 'worker', 'echo', '--port', String(port)], {
      stdio: 'ignore',
      env: { ...process.env, FLEET_LOG_LEVEL: 'silent' },
    }),
  );
  const m = new WorkerManager(config, { logger: pino({ level: 'silent' }) });
  await m.start();
  for (
    let tries = 0;
    m.registry.list().filter((w) => w.baseStatus === 'online').length < 2 && tries < 200;
    tries++
  ) {
    for (const p of ports) await m.registerWorker({ endpoint: `ws://127.0.0.1:${p}/ws` });
    await sleep(50);
  }
  const task = (await m.submit({ capability: 'sleep', payload: { ms: 3000 } })).task;
  while ((await m.getTask(task.id)).state !== 'running') await sleep(5);
  const victimId = (await m.getTask(task.id)).workerId;
  const victim = procs[ports.indexOf(m.registry.get(victimId).port)];
  let offlineAt;
  let rerunAt;
  const off = m.registry.subscribe(
    (e) =>
      e.worker.workerId === victimId &&
      e.worker.baseStatus === 'offline' &&
      (offlineAt ??= performance.now()),
  );
  const unsub = m.subscribe(
    (e) =>
      e.type === 'task' &&
      e.event.kind === 'claimed' &&
      e.event.task.id === task.id &&
      (rerunAt ??= performance.now()),
  );
  const killedAt = performance.now();
  victim.kill('SIGKILL');
  await m.waitForTask(task.id, { timeoutMs: 10_000 });
  off();
  unsub();
  await m.stop();
  for (const p of procs) p.kill('SIGKILL');
  return { offlineMs: offlineAt - killedAt, rerunAfterDetectionMs: rerunAt - offlineAt };
}

/** A full collection, so heap figures compare live objects only (and RSS what the heap gave back). */
function fullGc() {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc');
  gc();
  gc();
}

/**
 * RSS and live heap of a manager (and its four in-process echo workers) after a warm-up and after `n` more
 * tasks. The live heap after a full GC is what a leak would grow; RSS also holds what V8 and malloc keep for
 * later, and it moves with the allocator's mood from run to run.
 */
async function rssGrowth(n) {
  const { parseConfig } = await load('config/load.js');
  const { WorkerManager } = await load('manager/manager.js');
  const { WorkerServer } = await load('workers/common/server.js');
  const { createEchoKind } = await load('workers/echo/index.js');
  const silent = pino({ level: 'silent' });
  const config = parseConfig({
    manager: { port: 0, log_level: 'silent', queue: { max_size: 1_000_000 } },
    echo: { port: 0, max_concurrent_tasks: 16 },
  });
  const workers = [];
  for (let i = 0; i < 4; i++) {
    const s = new WorkerServer({ kind: createEchoKind(config.echo), config: config.echo, logger: silent });
    await s.start();
    workers.push(s);
  }
  const m = new WorkerManager(config, { logger: silent });
  await m.start();
  for (const w of workers) await m.registerWorker({ endpoint: w.endpoint });
  const batch = async (count) => {
    for (let i = 0; i < count; i += 1000) {
      const ids = [];
      for (let j = 0; j < Math.min(1000, count - i); j++)
        ids.push((await m.submit({ capability: 'echo', payload: { j } })).task.id);
      await Promise.all(ids.map((id) => m.waitForTask(id)));
    }
  };
  await batch(10_000); // warm-up
  fullGc();
  const before = process.memoryUsage();
  await batch(n);
  fullGc();
  const after = process.memoryUsage();
  await m.stop();
  for (const w of workers) await w.stop();
  return { before, after };
}

const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const runs = { http: [], ws: [], bullmq: [], floor: [] };
for (let i = 0; i < repeat; i++) {
  // Interleaved, so a noisy neighbour on the shared machine hits every side alike.
  if (only.has('bullmq')) runs.bullmq.push(await bullRun(i));
  if (only.has('http')) runs.http.push(await fleetRun('fleet-http', i));
  if (only.has('ws') && hasWs) runs.ws.push(await fleetRun('fleet-ws', i));
  if (only.has('floor')) runs.floor.push(await floorRun());
}
const agg = (list) =>
  list.length
    ? {
        p50: median(list.map((r) => r.p50)),
        p99: median(list.map((r) => r.p99)),
        perSecond: median(list.map((r) => r.perSecond)),
        cpuPerTask: median(list.map((r) => r.cpuPerTask)),
        cpu: Object.fromEntries(
          ['seqCpu', 'loopCpu', 'seqWrites'].map((phase) => [
            phase,
            Object.fromEntries(
              ['client', 'broker', 'worker'].map((who) => [who, median(list.map((r) => r[phase][who]))]),
            ),
          ]),
        ),
      }
    : undefined;
const bull = agg(runs.bullmq);
const sides = { 'Fleet HTTP': agg(runs.http), 'Fleet WebSocket': agg(runs.ws) };

console.log(
  `\nFleet vs BullMQ on the user's path: client process → broker → one worker process (concurrency ${INFLIGHT}), no-op echo` +
    `\n${rounds} sequential round trips, ${tasks} tasks closed-loop with ${INFLIGHT} in flight; median of ${repeat} run(s); build ${dist}\n`,
);
const ms = (x) => (x === undefined ? '-' : `${x.toFixed(3)} ms`);
const ratio = (a, b, inv = false) =>
  a === undefined || b === undefined ? '-' : `${(inv ? b / a : a / b).toFixed(2)}×`;
const table = {};
const row = (name, s) => {
  table[name] = {
    p50: ms(s?.p50),
    p99: ms(s?.p99),
    'tasks/s (64 in flight)': s ? s.perSecond.toFixed(0) : '-',
    'broker CPU/task': s ? `${s.cpuPerTask.toFixed(0)} µs` : '-',
  };
};
row('BullMQ (broker: redis-server)', bull);
for (const [name, s] of Object.entries(sides)) row(`${name} (broker: manager)`, s);
console.table(table);
const ratios = {};
for (const [name, s] of Object.entries(sides)) {
  if (!s) continue;
  const aimP50 = name.includes('WebSocket') ? 0.5 : 1;
  const aimTp = name.includes('WebSocket') ? 2 : 1;
  ratios[`${name} / BullMQ`] = {
    'p50 ratio': ratio(s.p50, bull?.p50),
    'p50 aim': `≤ ${aimP50}×`,
    'p99 ratio': ratio(s.p99, bull?.p99),
    'throughput ratio': ratio(s.perSecond, bull?.perSecond),
    'throughput aim': `≥ ${aimTp}×`,
  };
}
console.table(ratios);
const cpuTable = {};
for (const [name, s] of [['BullMQ', bull], ...Object.entries(sides)]) {
  if (!s) continue;
  const us = (x) => (Number.isFinite(x) ? `${x.toFixed(0)} µs` : '-');
  cpuTable[name] = {
    'seq: client': us(s.cpu.seqCpu.client),
    'seq: broker': us(s.cpu.seqCpu.broker),
    'seq: worker': us(s.cpu.seqCpu.worker),
    'loop: client': us(s.cpu.loopCpu.client),
    'loop: broker': us(s.cpu.loopCpu.broker),
    'loop: worker': us(s.cpu.loopCpu.worker),
  };
}
console.log('CPU per task of each process (user + system, measured calls only):');
console.table(cpuTable);
const writesTable = {};
for (const [name, s] of [['BullMQ', bull], ...Object.entries(sides)]) {
  if (!s) continue;
  const n = (x) => (Number.isFinite(x) ? x.toFixed(2) : '-');
  const w = s.cpu.seqWrites;
  writesTable[name] = {
    client: n(w.client),
    broker: n(w.broker),
    worker: n(w.worker),
    'all (socket hops)': n(w.client + w.broker + w.worker),
  };
}
console.log(
  'Write syscalls per sequential round trip, by process (/proc/<pid>/io; each socket write wakes its reader):',
);
console.table(writesTable);
if (runs.floor.length) {
  const floor = {
    p50: median(runs.floor.map((r) => r.p50)),
    writes: median(runs.floor.map((r) => r.writes)),
  };
  console.log(
    `floor: the same three processes and four hops over \`ws\` with no Fleet code (lib/ws-relay.mjs): p50 ` +
      `${ms(floor.p50)} (${ratio(floor.p50, bull?.p50)} BullMQ's; the channel's aim is 0.5×), ` +
      `client writes per round trip ${floor.writes.toFixed(2)}`,
  );
}
if (!hasWs) console.log('(this build has no WebSocket client channel: that row is empty)');

const extra = await inProcess();
console.log(
  `extra, not the user's path: manager.executeTask() inside the manager's process, p50 ${ms(extra.p50)}, p99 ${ms(extra.p99)}`,
);
if (!args['skip-failure']) {
  const fd = await failureDetection();
  console.table({
    'kill -9 → offline': { ms: fd.offlineMs.toFixed(1), aim: '≤ 1000' },
    'offline → task claimed elsewhere': { ms: fd.rerunAfterDetectionMs.toFixed(1), aim: '≤ 200' },
  });
}
if (!args['skip-rss']) {
  const mem = await rssGrowth(rssTasks);
  const line = (key) => ({
    before: `${(mem.before[key] / 2 ** 20).toFixed(1)} MB`,
    after: `${(mem.after[key] / 2 ** 20).toFixed(1)} MB`,
    growth: `${(((mem.after[key] - mem.before[key]) / mem.before[key]) * 100).toFixed(1)} %`,
    aim: '< 10 %',
  });
  console.table({
    [`manager RSS, ${rssTasks} tasks after a 10 000 warm-up`]: line('rss'),
    'live heap after a full GC (what a leak grows)': line('heapUsed'),
  });
}
if (profDir) console.log(`CPU profiles of the manager, worker and client processes in ${profDir}`);
process.exit(0);
