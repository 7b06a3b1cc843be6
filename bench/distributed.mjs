// Distributed mode: no-op echo throughput through two manager processes sharing the machine's Redis, side
// by side with raw BullMQ on the same Redis in the same run: the reference has the Fleet run's process layout
// (a client process adding jobs and waiting for each result, four Worker processes at the echo worker's
// concurrency); BullMQ at its fastest (addBulk, one Worker in the adding process, no result waited for) is a
// second, labelled line.
// Tasks go in through both managers' HTTP APIs, as clients would send them: one `POST /api/tasks?wait=true`
// per task (submit and wait for the result) over keep-alive connections, 128 in flight. A second Fleet run
// puts everything in one process, as the reference does: two WorkerManagers on Redis, four echo workers
// over loopback WebSockets, tasks handed to `submitAndWait` directly.
// Besides the rates it prints the CPU each side spent per task, by process group, read from /proc: on a
// small machine every process of the Fleet side (load generator, managers, workers, Redis) competes for the
// same cores, and the rate alone hides where they went.
// Build first (`npm run build`); then `node bench/distributed.mjs [tasks]`. Keys live under a fresh prefix,
// deleted afterwards. BENCH_CPU_PROF=<dir> runs the two manager processes under `--cpu-prof` (written to
// <dir> when they are stopped after the HTTP run); `node bench/lib/profile-top.mjs <dir>/*.cpuprofile`
// lists where their time went.
import { fork, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { parseConfig } from '../dist/config/load.js';
import { WorkerManager } from '../dist/manager/manager.js';
import { createManagerStores } from '../dist/manager/store-factory.js';
import { WorkerServer } from '../dist/workers/common/server.js';
import { createEchoKind } from '../dist/workers/echo/index.js';
import { deleteKeys, fleetProcess, freePort, until, writeCalls } from './lib/support.mjs';

const tasks = Number(process.argv[2] ?? 2000);
if (!Number.isInteger(tasks) || tasks < 1 || tasks > 200_000) throw new Error('tasks must be 1..200000');
// A private redis-server (unless REDIS_URL names one): INFO commandstats then counts this run's commands
// only, not those of whatever else shares the machine's Redis.
const privateRedis = process.env.REDIS_URL ? undefined : await startPrivateRedis();
const redisUrl = process.env.REDIS_URL ?? privateRedis.url;
const prefix = `fleet-bench-dist-${randomUUID().slice(0, 8)}`;
const procs = [];

const cpuProfDir = process.env.BENCH_CPU_PROF;
const start = (args, env = {}, nodeArgs = []) => {
  const p = fleetProcess(args, env, nodeArgs);
  procs.push(p);
  return p;
};
async function pool(n, items, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

async function startPrivateRedis() {
  const port = await freePort();
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  const url = `redis://127.0.0.1:${port}`;
  await until(async () => {
    const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      await r.connect();
      return (await r.ping()) === 'PONG';
    } catch {
      return false;
    } finally {
      r.disconnect();
    }
  }, 'the private redis-server');
  return { url, proc };
}

/** Commands Redis has run so far (INFO commandstats, those run by scripts included), by command. */
async function commandCounts() {
  const r = new Redis(redisUrl);
  try {
    const counts = {};
    for (const m of (await r.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm))
      counts[m[1]] = Number(m[2]);
    return counts;
  } finally {
    r.disconnect();
  }
}
/** Starts counting Redis commands; the returned function gives the commands run since, by command. */
async function commandMeter() {
  const before = await commandCounts();
  return async () => {
    const after = await commandCounts();
    const delta = {};
    for (const [cmd, n] of Object.entries(after)) {
      const d = n - (before[cmd] ?? 0) - (cmd === 'info' ? 1 : 0);
      if (d > 0) delta[cmd] = d;
    }
    return delta;
  };
}

/** CPU time (user + system, ms) a process has used so far; undefined where /proc cannot tell. */
function cpuMs(pid) {
  const file = `/proc/${pid}/stat`;
  if (!existsSync(file)) return undefined;
  const fields = readFileSync(file, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10; // clock ticks, 100 per second on Linux
}
const selfWrites = () => writeCalls();
const sumWrites = (pids) => () => pids.reduce((n, pid) => n + writeCalls(pid), 0);
const selfCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const sumCpu = (pids) => () => pids.reduce((n, pid) => n + (cpuMs(pid) ?? NaN), 0);
/** The local redis-server's pid; undefined for a Redis elsewhere (its CPU is then not counted). */
async function redisPid() {
  const r = new Redis(redisUrl);
  try {
    const pid = Number(/process_id:(\d+)/.exec(await r.info('server'))?.[1]);
    return cpuMs(pid) === undefined ? undefined : pid;
  } finally {
    r.disconnect();
  }
}
/** Starts counting the CPU of each group; the returned function gives what each spent since. */
function cpuMeter(groups) {
  const read = () => Object.fromEntries(Object.entries(groups).map(([k, f]) => [k, f()]));
  const before = read();
  return () => {
    const after = read();
    return Object.fromEntries(
      Object.keys(groups).map((k) => [k, after[k] === undefined ? undefined : after[k] - before[k]]),
    );
  };
}

/**
 * Starts counting, per process group, the CPU (ms) and the write syscalls its processes spend: a group is
 * 'self' (this process), a list of pids, or undefined (not measured in this run). The returned function
 * gives both since the start.
 */
function processMeter(groups) {
  const each = (self, sum) =>
    Object.fromEntries(
      Object.entries(groups).map(([k, g]) => [
        k,
        g === 'self' ? self : Array.isArray(g) ? sum(g) : () => undefined,
      ]),
    );
  const spent = cpuMeter(each(selfCpuMs, sumCpu));
  const wrote = cpuMeter(each(selfWrites, sumWrites));
  return () => ({ cpu: spent(), writes: wrote() });
}

const agent = new Agent({ keepAlive: true, maxSockets: 128 });
function postJson(url, body) {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

async function fleetRun() {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-bench-'));
  const file = join(dir, 'fleet.yaml');
  writeFileSync(
    file,
    `manager:\n  store: redis\n  redis: { url: "${redisUrl}", prefix: "${prefix}" }\n  log_level: error\n  queue: { max_size: 100000 }\n`,
  );
  const managers = [];
  for (let i = 0; i < 2; i++) {
    const port = await freePort();
    start(
      ['manager', '-c', file],
      { FLEET_PORT: String(port) },
      cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${cpuProfDir}`] : [],
    );
    managers.push(`http://127.0.0.1:${port}`);
  }
  const workers = [];
  for (let i = 0; i < 4; i++) {
    const port = await freePort();
    start(['worker', 'echo', '--port', String(port)]);
    workers.push(`ws://127.0.0.1:${port}/ws`);
  }
  for (const m of managers) await until(async () => (await fetch(`${m}/health`)).ok, `manager ${m}`);
  for (const [i, w] of workers.entries()) {
    await until(
      async () => (await fetch(w.replace('ws:', 'http:').replace('/ws', '/health'))).ok,
      `worker ${w}`,
    );
    await fetch(`${managers[i % 2]}/api/workers`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ endpoint: w }),
    });
  }
  for (const m of managers) {
    await until(async () => {
      const { workers: ws } = await (await fetch(`${m}/api/workers`)).json();
      return ws.filter((w) => w.status === 'online').length === 4;
    }, `four workers online in ${m}`);
  }
  const ids = Array.from({ length: tasks }, (_, i) => `bench-${i}`);
  const redis = await redisPid();
  const measured = processMeter({
    'load generator': 'self',
    managers: procs.slice(0, 2).map((p) => p.pid),
    workers: procs.slice(2).map((p) => p.pid),
    redis: redis ? [redis] : undefined,
  });
  const commands = await commandMeter();
  const t0 = performance.now();
  await pool(128, ids, async (id) => {
    const m = managers[Number(id.split('-')[1]) % 2];
    const r = await postJson(`${m}/api/tasks?wait=true&timeoutMs=60000`, {
      id,
      capability: 'echo',
      payload: {},
    });
    if (r.status !== 200) throw new Error(`submit ${id}: HTTP ${r.status} ${r.body}`);
    const { task } = JSON.parse(r.body);
    if (task.state !== 'succeeded') throw new Error(`${id} ended ${task.state}`);
  });
  const rate = tasks / ((performance.now() - t0) / 1000);
  const { cpu, writes } = measured();
  const cmds = await commands();
  const channel = await channelPhase(managers, redis);
  rmSync(dir, { recursive: true, force: true });
  if (cpuProfDir) {
    // A profile is written when the process exits on its own: a graceful stop, not the final SIGKILL.
    await Promise.all(
      procs.slice(0, 2).map((p) => new Promise((resolve) => p.once('exit', resolve).kill('SIGTERM'))),
    );
  }
  return { http: { rate, cpu, cmds, writes }, channel };
}

/**
 * The same processes again, the load through FleetClient's WebSocket channel (one client per manager, 128
 * tasks in flight in all) instead of one HTTP request per task: what the HTTP front costs, apart.
 */
async function channelPhase(managers, redis) {
  const { FleetClient } = await import('../dist/client/fleet-client.js');
  const clients = managers.map((url) => new FleetClient({ url, channel: 'websocket' }));
  try {
    await Promise.all(clients.map((c) => c.execute('echo', {}))); // connects the channels
    const measured = processMeter({
      'load generator': 'self',
      managers: procs.slice(0, 2).map((p) => p.pid),
      workers: procs.slice(2, 6).map((p) => p.pid),
      redis: redis ? [redis] : undefined,
    });
    const commands = await commandMeter();
    const ids = Array.from({ length: tasks }, (_, i) => i);
    const t0 = performance.now();
    await pool(128, ids, async (i) => {
      const task = await clients[i % 2].execute('echo', {});
      if (task.state !== 'succeeded') throw new Error(`${task.id} ended ${task.state}`);
    });
    const rate = tasks / ((performance.now() - t0) / 1000);
    return { rate, ...measured(), cmds: await commands() };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
}

async function inProcessRun() {
  const silent = pino({ level: 'silent' });
  const config = (id) =>
    parseConfig({
      manager: {
        id,
        port: 0,
        log_level: 'silent',
        store: 'redis',
        redis: { url: redisUrl, prefix: `${prefix}-one` },
        queue: { max_size: 100_000 },
      },
      echo: { port: 0 },
    });
  const stops = [];
  try {
    const managers = [];
    for (let i = 0; i < 2; i++) {
      const cfg = config(`bench-manager-${i}`);
      const stores = await createManagerStores(cfg);
      const m = new WorkerManager(cfg, { logger: silent, ...stores.deps });
      await m.start();
      stops.push(async () => {
        await m.stop();
        await stores.close();
      });
      managers.push(m);
    }
    for (let i = 0; i < 4; i++) {
      const section = config('x').echo;
      const w = new WorkerServer({ kind: createEchoKind(section), config: section, logger: silent });
      await w.start();
      stops.push(() => w.stop());
      await managers[i % 2].registerWorker({ endpoint: w.endpoint });
    }
    for (const m of managers) {
      await until(
        async () => m.registry.list().filter((w) => w.baseStatus === 'online').length === 2,
        'two workers online per manager',
      );
    }
    const ids = Array.from({ length: tasks }, (_, i) => `one-${i}`);
    const redis = await redisPid();
    const measured = processMeter({
      'load generator': undefined,
      // Managers, workers and the submitting code share this process.
      managers: 'self',
      workers: undefined,
      redis: redis ? [redis] : undefined,
    });
    const commands = await commandMeter();
    const t0 = performance.now();
    await pool(128, ids, async (id) => {
      const m = managers[Number(id.split('-')[1]) % 2];
      const { task } = await m.submitAndWait({ id, capability: 'echo', payload: {} });
      if (task.state !== 'succeeded') throw new Error(`${id} ended ${task.state}`);
    });
    const rate = tasks / ((performance.now() - t0) / 1000);
    return { rate, ...measured(), cmds: await commands() };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
  }
}

const here = (p) => new URL(p, import.meta.url).pathname;
function waitMessage(child, pred) {
  return new Promise((res, rej) => {
    const onMsg = (m) => pred(m) && (child.off('message', onMsg), res(m));
    child.on('message', onMsg);
    child.once('exit', (code) => rej(new Error(`child exited (${code}) before it was ready`)));
  });
}

/**
 * BullMQ in the Fleet run's process layout: a client process adding one job per task and waiting for its
 * result (Queue.add + waitUntilFinished through QueueEvents, 128 in flight, what bench/manager.mjs's client
 * does), and four worker processes, each a Worker at the echo worker's concurrency (8). BullMQ has no broker
 * process of its own: Redis is its broker, as it is the managers' store.
 */
async function bullProcessesRun() {
  const bullPrefix = `${prefix}-bullp`;
  const workers = [];
  for (let i = 0; i < 4; i++) {
    const w = fork(here('./lib/bench-bull-worker.mjs'), [redisUrl, bullPrefix, 'bench', '8'], {
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    workers.push(w);
    procs.push(w);
  }
  await Promise.all(workers.map((w) => waitMessage(w, (m) => m.ready)));
  const redis = await redisPid();
  const measured = processMeter({
    'load generator': undefined, // the client reports its own, below
    managers: undefined,
    workers: workers.map((w) => w.pid),
    redis: redis ? [redis] : undefined,
  });
  const commands = await commandMeter();
  const out = await new Promise((res, rej) => {
    const c = spawn(
      process.execPath,
      [
        here('./lib/bench-client.mjs'),
        JSON.stringify({
          mode: 'bullmq',
          phase: 'loop',
          redisUrl,
          prefix: bullPrefix,
          tasks,
          inflight: 128,
          warmUp: 0,
        }),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let text = '';
    c.stdout.on('data', (d) => (text += d));
    c.once('exit', (code) =>
      code === 0
        ? res(JSON.parse(text.trim().split('\n').pop()))
        : rej(new Error(`bullmq client exited ${code}`)),
    );
  });
  const { cpu, writes } = measured();
  cpu['load generator'] = out.cpuMs;
  writes['load generator'] = out.writes;
  const cmds = await commands();
  await Promise.all(workers.map((w) => new Promise((resolve) => (w.once('exit', resolve), w.send('stop')))));
  return { rate: out.perSecond, cpu, cmds, writes };
}

async function bullRun() {
  const connection = { url: redisUrl, maxRetriesPerRequest: null };
  const q = new Queue('raw', { connection, prefix });
  let done = 0;
  let finish;
  const all = new Promise((r) => (finish = r));
  const redis = await redisPid();
  const measured = processMeter({
    'load generator': undefined,
    managers: undefined,
    // The Queue that adds and the Worker that runs the jobs share this process.
    workers: 'self',
    redis: redis ? [redis] : undefined,
  });
  const commands = await commandMeter();
  const t0 = performance.now();
  const w = new Worker('raw', async () => undefined, { connection, prefix, concurrency: 16 });
  w.on('completed', () => ++done === tasks && finish());
  for (let i = 0; i < tasks; i += 500) {
    await q.addBulk(
      Array.from({ length: Math.min(500, tasks - i) }, (_, j) => ({
        name: 'noop',
        data: { i: i + j },
        opts: { removeOnComplete: true },
      })),
    );
  }
  await all;
  const rate = tasks / ((performance.now() - t0) / 1000);
  const { cpu, writes } = measured();
  const cmds = await commands();
  await w.close();
  await q.close();
  return { rate, cpu, cmds, writes };
}

/** Redis commands per task: all of them, and the busiest, for each side. */
function commandTable(runs) {
  const rows = {};
  const top = new Set();
  for (const { cmds } of Object.values(runs)) {
    Object.entries(cmds)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 6)
      .forEach(([c]) => top.add(c));
  }
  for (const [side, { cmds }] of Object.entries(runs)) {
    const total = Object.values(cmds).reduce((a, b) => a + b, 0);
    (rows['all commands'] ??= {})[side] = (total / tasks).toFixed(1);
    for (const c of top) (rows[c] ??= {})[side] = ((cmds[c] ?? 0) / tasks).toFixed(2);
  }
  return rows;
}

/** Socket sends per task by process group: the messages a task costs, whatever the machine's load. */
function writesTable(runs) {
  const rows = {};
  for (const [side, { writes }] of Object.entries(runs)) {
    let total = 0;
    for (const [group, n] of Object.entries(writes)) {
      const ok = n !== undefined && !Number.isNaN(n);
      (rows[group] ??= {})[side] = ok ? (n / tasks).toFixed(2) : '-';
      if (ok) total += n;
    }
    (rows.total ??= {})[side] = (total / tasks).toFixed(2);
  }
  return rows;
}

function cpuTable(runs) {
  const perTask = (ms) =>
    ms === undefined || Number.isNaN(ms) ? '-' : `${((ms / tasks) * 1000).toFixed(0)} µs`;
  const rows = {};
  for (const [side, { cpu }] of Object.entries(runs)) {
    let total = 0;
    for (const [group, ms] of Object.entries(cpu)) {
      (rows[group] ??= {})[side] = perTask(ms);
      if (ms !== undefined && !Number.isNaN(ms)) total += ms;
    }
    (rows.total ??= {})[side] = perTask(total);
  }
  return rows;
}

try {
  const { http: fleet, channel } = await fleetRun();
  const oneProcess = await inProcessRun();
  const bullProcs = await bullProcessesRun();
  const bull = await bullRun();
  console.log(
    `\nDistributed no-op throughput, ${tasks} tasks. Fleet: 2 managers + 4 echo worker processes (concurrency 8), ` +
      `HTTP load generator. BullMQ, same layout: a client process (add + waitUntilFinished) + 4 Worker processes ` +
      `(concurrency 8). BullMQ, one process: addBulk and one Worker at concurrency 16, no result waited for.\n`,
  );
  const ratio = (r, ref) => `${(r.rate / ref.rate).toFixed(2)}×`;
  console.table({
    'fleet: processes, HTTP': {
      'tasks/s': fleet.rate.toFixed(0),
      'vs bullmq, same layout': ratio(fleet, bullProcs),
      'vs bullmq, one process': ratio(fleet, bull),
      aim: '≥ 0.8× same layout',
    },
    'fleet: processes, WebSocket channel': {
      'tasks/s': channel.rate.toFixed(0),
      'vs bullmq, same layout': ratio(channel, bullProcs),
      'vs bullmq, one process': ratio(channel, bull),
    },
    'fleet: one process': {
      'tasks/s': oneProcess.rate.toFixed(0),
      'vs bullmq, same layout': ratio(oneProcess, bullProcs),
      'vs bullmq, one process': ratio(oneProcess, bull),
    },
    'bullmq: processes (reference)': { 'tasks/s': bullProcs.rate.toFixed(0) },
    'bullmq: one process, addBulk': { 'tasks/s': bull.rate.toFixed(0) },
  });
  const runs = {
    'fleet: processes': fleet,
    'fleet: channel': channel,
    'fleet: one process': oneProcess,
    'bullmq: processes': bullProcs,
    'bullmq: one process': bull,
  };
  console.log(
    'CPU per task by process group (fleet one process: managers, workers and submitter together; BullMQ one process: its Queue and Worker)',
  );
  console.table(cpuTable(runs));
  console.log('Write syscalls per task by process group (/proc/<pid>/io syscw: each socket send is one)');
  console.table(writesTable(runs));
  const perTask = (r) => Object.values(r.cmds).reduce((a, b) => a + b, 0) / tasks;
  console.log(
    `Redis commands per task (INFO commandstats deltas, script-run commands included; ${privateRedis ? 'a private redis-server' : redisUrl}); ` +
      `fleet processes ${(perTask(fleet) / perTask(bullProcs)).toFixed(2)}× BullMQ's same layout (aim ≤ 1.5×), ` +
      `${(perTask(fleet) / perTask(bull)).toFixed(2)}× BullMQ's one process`,
  );
  console.table(commandTable(runs));
  console.log(
    `load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
} finally {
  for (const p of procs) p.kill('SIGKILL');
  agent.destroy();
  if (privateRedis) privateRedis.proc.kill('SIGKILL');
  else await deleteKeys(redisUrl, `${prefix}*`);
}
process.exit(0);
