// Redis queue throughput: Fleet's RedisTaskQueue (submit → claim → complete, no-op work) side by side with
// raw BullMQ no-op jobs (Queue.add + Worker with a no-op processor, concurrency 16) on the same Redis, in the
// same run. Build first: `npx tsc -p tsconfig.build.json`. Then `node bench/redis-queue.mjs [tasks]`.
// REDIS_URL picks the Redis (default redis://127.0.0.1:6379). Keys live under a fresh prefix, deleted after.
import { randomUUID } from 'node:crypto';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { RedisTaskQueue } from '../dist/manager/queue/redis/task-queue.js';
import { deleteKeys } from './lib/support.mjs';

const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const tasks = Number(process.argv[2] ?? 2000);
const concurrency = 16;
if (!Number.isInteger(tasks) || tasks < 1 || tasks > 200_000) throw new Error('tasks must be 1..200000');

async function pool(n, fn) {
  await Promise.all(Array.from({ length: n }, (_, i) => fn(i)));
}

async function fleetRun() {
  const prefix = `fleet-bench-${randomUUID().slice(0, 8)}`;
  const q = new RedisTaskQueue({
    maxQueued: tasks + 10,
    retainFinished: tasks + 10,
    defaultMaxAttempts: 3,
    timeoutMs: () => 30_000,
    backoffMs: 200,
    maxBackoffMs: 30_000,
    redis: { url, prefix },
    lockDurationMs: 10_000,
  });
  try {
    const start = performance.now();
    let next = 0;
    await pool(concurrency, async () => {
      while (next < tasks) {
        next++;
        await q.submit({ capability: 'noop', payload: {} });
      }
    });
    const submitted = performance.now();
    let done = 0;
    await pool(concurrency, async (i) => {
      for (;;) {
        const t = await q.claim(['noop'], `w${i}`);
        if (!t) return;
        await q.complete(t.id, t.leaseToken, null);
        done++;
      }
    });
    const end = performance.now();
    if (done !== tasks) throw new Error(`fleet completed ${done} of ${tasks}`);
    return {
      name: 'Fleet RedisTaskQueue',
      submitMs: submitted - start,
      processMs: end - submitted,
      totalMs: end - start,
    };
  } finally {
    await q.close();
    await deleteKeys(url, `${prefix}:*`);
  }
}

async function bullRun() {
  const prefix = `fleet-bench-${randomUUID().slice(0, 8)}`;
  const connection = new Redis(url, { maxRetriesPerRequest: null });
  const queue = new Queue('noop', { connection, prefix });
  try {
    const start = performance.now();
    let next = 0;
    await pool(concurrency, async () => {
      while (next < tasks) {
        next++;
        await queue.add('noop', {}, { removeOnComplete: true, removeOnFail: true });
      }
    });
    const submitted = performance.now();
    let done = 0;
    let finish;
    const finished = new Promise((resolve) => (finish = resolve));
    const worker = new Worker('noop', async () => null, { connection, prefix, concurrency });
    worker.on('completed', () => {
      if (++done === tasks) finish();
    });
    await finished;
    const end = performance.now();
    await worker.close();
    return {
      name: 'raw BullMQ (Worker, concurrency 16)',
      submitMs: submitted - start,
      processMs: end - submitted,
      totalMs: end - start,
    };
  } finally {
    await queue.close();
    await deleteKeys(url, `${prefix}:*`);
    connection.disconnect();
  }
}

const rate = (ms) => Math.round((tasks / ms) * 1000);
const fleet = await fleetRun();
const bull = await bullRun();
const rows = [fleet, bull].map((r) => ({
  store: r.name,
  tasks,
  'submit/s': rate(r.submitMs),
  'claim+complete/s': rate(r.processMs),
  'end-to-end/s': rate(r.totalMs),
}));
console.log(`Redis ${url}, ${tasks} no-op tasks, ${concurrency} concurrent submitters and consumers`);
console.table(rows);
console.log(
  `Fleet / BullMQ: submit ${(rate(fleet.submitMs) / rate(bull.submitMs)).toFixed(2)}x, ` +
    `claim+complete ${(rate(fleet.processMs) / rate(bull.processMs)).toFixed(2)}x, ` +
    `end-to-end ${(rate(fleet.totalMs) / rate(bull.totalMs)).toFixed(2)}x`,
);
