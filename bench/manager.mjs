// The foundation's targets, side by side with BullMQ on the machine's Redis in the same run:
//  1. sequential round trip (submit → result) of a no-op echo task, p50/p99, vs BullMQ add → completed;
//  2. throughput with 4 echo workers vs BullMQ no-op jobs at concurrency 16;
//  3. failure detection: kill -9 of a worker process → offline, → its task running elsewhere;
//  4. manager RSS before and after 100 000 tasks.
// Workers run in this process (over real loopback WebSockets), as the BullMQ worker of the reference does.
// Build first (`npm run build`); then `node bench/manager.mjs [roundTrips] [throughputTasks] [rssTasks]`.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { parseConfig } from '../dist/config/load.js';
import { WorkerManager } from '../dist/manager/manager.js';
import { WorkerServer } from '../dist/workers/common/server.js';
import { createEchoKind } from '../dist/workers/echo/index.js';
import { freePort } from './lib/support.mjs';

const [rounds = 2000, throughputTasks = 20000, rssTasks = 100000] = process.argv.slice(2).map(Number);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const silent = pino({ level: 'silent' });
const pct = (xs, p) =>
  xs.slice().sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))[
    Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))
  ];
const us = (ns) => `${(Number(ns) / 1000).toFixed(0)} µs`;

function config(extra = {}) {
  return parseConfig({
    manager: {
      port: 0,
      log_level: 'silent',
      queue: { max_size: 1_000_000 },
      health: { heartbeat_interval: '250ms', missed_heartbeats: 4 },
      ...extra,
    },
    echo: { port: 0, max_concurrent_tasks: 16 },
  });
}

async function echoWorkers(n) {
  const servers = [];
  for (let i = 0; i < n; i++) {
    const section = config().echo;
    const s = new WorkerServer({ kind: createEchoKind(section), config: section, logger: silent });
    await s.start();
    servers.push(s);
  }
  return servers;
}

async function fleetWith(workers) {
  const m = new WorkerManager(config(), { logger: silent });
  await m.start();
  for (const w of workers) await m.registerWorker({ endpoint: w.endpoint });
  return m;
}

async function fleetRoundTrip(m) {
  const times = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = process.hrtime.bigint();
    const t = await m.executeTask({ capability: 'echo', payload: { i } });
    times.push(process.hrtime.bigint() - t0);
    if (t.state !== 'succeeded') throw new Error(`task failed: ${JSON.stringify(t.error)}`);
  }
  return times;
}

async function bullRoundTrip(prefix) {
  const connection = { url: redisUrl, maxRetriesPerRequest: null };
  const q = new Queue('rt', { connection, prefix });
  const ev = new QueueEvents('rt', { connection, prefix });
  const w = new Worker('rt', async (job) => job.data, { connection, prefix, concurrency: 1 });
  await ev.waitUntilReady();
  await w.waitUntilReady();
  const times = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = process.hrtime.bigint();
    const job = await q.add('noop', { i });
    await job.waitUntilFinished(ev, 10_000);
    times.push(process.hrtime.bigint() - t0);
  }
  await w.close();
  await ev.close();
  await q.close();
  return times;
}

async function fleetThroughput(m, n) {
  const t0 = performance.now();
  const ids = [];
  for (let i = 0; i < n; i++) ids.push((await m.submit({ capability: 'echo', payload: { i } })).task.id);
  await Promise.all(ids.map((id) => m.waitForTask(id)));
  return n / ((performance.now() - t0) / 1000);
}

async function bullThroughput(prefix, n) {
  const connection = { url: redisUrl, maxRetriesPerRequest: null };
  const q = new Queue('tp', { connection, prefix });
  let done = 0;
  let finish;
  const all = new Promise((r) => (finish = r));
  const t0 = performance.now();
  const w = new Worker('tp', async () => undefined, { connection, prefix, concurrency: 16 });
  w.on('completed', () => ++done === n && finish());
  for (let i = 0; i < n; i += 500)
    await q.addBulk(
      Array.from({ length: Math.min(500, n - i) }, (_, j) => ({
        name: 'noop',
        data: { i: i + j },
        opts: { removeOnComplete: true },
      })),
    );
  await all;
  const rate = n / ((performance.now() - t0) / 1000);
  await w.close();
  await q.close();
  return rate;
}

async function failureDetection() {
  const ports = [await freePort(), await freePort()];
  const procs = ports.map((port) =>
    spawn(process.execPath, ['dist/cli/main.js', 'worker', 'echo', '--port', String(port)], {
      stdio: 'ignore',
      env: { ...process.env, FLEET_LOG_LEVEL: 'silent' },
    }),
  );
  const m = new WorkerManager(config(), { logger: silent });
  await m.start();
  for (
    let tries = 0;
    m.registry.list().filter((w) => w.baseStatus === 'online').length < 2 && tries < 200;
    tries++
  ) {
    for (const p of ports) await m.registerWorker({ endpoint: `ws://127.0.0.1:${p}/ws` });
    await new Promise((r) => setTimeout(r, 50));
  }
  const task = (await m.submit({ capability: 'sleep', payload: { ms: 3000 } })).task;
  while ((await m.getTask(task.id)).state !== 'running') await new Promise((r) => setTimeout(r, 5));
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

async function rssGrowth(n) {
  const workers = await echoWorkers(4);
  const m = await fleetWith(workers);
  const batch = async (count) => {
    for (let i = 0; i < count; i += 1000) {
      const ids = [];
      for (let j = 0; j < Math.min(1000, count - i); j++)
        ids.push((await m.submit({ capability: 'echo', payload: { j } })).task.id);
      await Promise.all(ids.map((id) => m.waitForTask(id)));
    }
  };
  await batch(10_000); // warm-up
  global.gc?.();
  const before = process.memoryUsage().rss;
  await batch(n);
  global.gc?.();
  const after = process.memoryUsage().rss;
  await m.stop();
  for (const w of workers) await w.stop();
  return { before, after };
}

const prefix = `fleet-bench-${randomUUID().slice(0, 8)}`;
const workers = await echoWorkers(4);
const m = await fleetWith(workers);
const fleetRt = await fleetRoundTrip(m);
const bullRt = await bullRoundTrip(prefix);
const fleetTp = await fleetThroughput(m, throughputTasks);
const bullTp = await bullThroughput(prefix, throughputTasks);
await m.stop();
for (const w of workers) await w.stop();
const fd = await failureDetection();
const rss = await rssGrowth(rssTasks);
const r = new Redis(redisUrl);
const keys = await r.keys(`${prefix}:*`);
if (keys.length) await r.del(...keys);
r.disconnect();

console.log(
  '\nFleet foundation benchmark (no-op echo on loopback; BullMQ on the same machine as the reference)\n',
);
console.table({
  'round trip p50': {
    fleet: us(pct(fleetRt, 50)),
    bullmq: us(pct(bullRt, 50)),
    'fleet/bullmq': (Number(pct(fleetRt, 50)) / Number(pct(bullRt, 50))).toFixed(2),
  },
  'round trip p99': {
    fleet: us(pct(fleetRt, 99)),
    bullmq: us(pct(bullRt, 99)),
    'fleet/bullmq': (Number(pct(fleetRt, 99)) / Number(pct(bullRt, 99))).toFixed(2),
  },
  'throughput (tasks/s)': {
    fleet: fleetTp.toFixed(0),
    bullmq: bullTp.toFixed(0),
    'fleet/bullmq': (fleetTp / bullTp).toFixed(2),
  },
});
console.table({
  'kill -9 → offline': { ms: fd.offlineMs.toFixed(1), aim: '≤ 1000' },
  'offline → task claimed elsewhere': { ms: fd.rerunAfterDetectionMs.toFixed(1), aim: '≤ 200' },
});
console.table({
  [`manager RSS, ${rssTasks} tasks after a 10 000 warm-up`]: {
    before: `${(rss.before / 2 ** 20).toFixed(1)} MB`,
    after: `${(rss.after / 2 ** 20).toFixed(1)} MB`,
    growth: `${(((rss.after - rss.before) / rss.before) * 100).toFixed(1)} %`,
    aim: '< 10 %',
  },
});
process.exit(0);
