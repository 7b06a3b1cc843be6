// Distributed mode: no-op echo throughput through two manager processes sharing the machine's Redis, side
// by side with raw BullMQ no-op jobs (a Worker at concurrency 16) on the same Redis in the same run.
// Tasks go in through both managers' HTTP APIs, as clients would send them. Build first (`npm run build`);
// then `node bench/distributed.mjs [tasks]`. Keys live under a fresh prefix, deleted afterwards.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';

const tasks = Number(process.argv[2] ?? 2000);
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const prefix = `fleet-bench-dist-${randomUUID().slice(0, 8)}`;
const procs = [];

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const start = (args, env = {}) => {
  const p = spawn(process.execPath, ['dist/cli/main.js', ...args], {
    stdio: 'ignore',
    env: { ...process.env, FLEET_LOG_LEVEL: 'error', ...env },
  });
  procs.push(p);
  return p;
};
async function until(check, what, ms = 30_000) {
  const deadline = Date.now() + ms;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
async function pool(n, items, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
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
    start(['manager', '-c', file], { FLEET_PORT: String(port) });
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
  const t0 = performance.now();
  await pool(64, ids, async (id) => {
    const m = managers[Number(id.split('-')[1]) % 2];
    const r = await fetch(`${m}/api/tasks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ id, capability: 'echo', payload: {} }),
    });
    if (!r.ok) throw new Error(`submit ${id}: HTTP ${r.status} ${await r.text()}`);
  });
  await pool(64, ids, async (id) => {
    const m = managers[Number(id.split('-')[1]) % 2];
    const { task } = await (await fetch(`${m}/api/tasks/${id}/wait?timeoutMs=60000`)).json();
    if (task.state !== 'succeeded') throw new Error(`${id} ended ${task.state}`);
  });
  const rate = tasks / ((performance.now() - t0) / 1000);
  rmSync(dir, { recursive: true, force: true });
  return rate;
}

async function bullRun() {
  const connection = { url: redisUrl, maxRetriesPerRequest: null };
  const q = new Queue('raw', { connection, prefix });
  let done = 0;
  let finish;
  const all = new Promise((r) => (finish = r));
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
  await w.close();
  await q.close();
  return rate;
}

try {
  const fleet = await fleetRun();
  const bull = await bullRun();
  console.log(
    `\nDistributed no-op throughput, ${tasks} tasks (2 managers + 4 echo workers vs BullMQ at concurrency 16)\n`,
  );
  console.table({
    'tasks/s': {
      fleet: fleet.toFixed(0),
      bullmq: bull.toFixed(0),
      'fleet/bullmq': (fleet / bull).toFixed(2),
      aim: '≥ 0.8',
    },
  });
} finally {
  for (const p of procs) p.kill('SIGKILL');
  const r = new Redis(redisUrl);
  let cursor = '0';
  do {
    const [next, keys] = await r.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) await r.unlink(...keys);
  } while (cursor !== '0');
  r.disconnect();
}
process.exit(0);
