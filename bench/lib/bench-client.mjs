// The client process of bench/manager.mjs: the path an agent takes, through the public API only.
//   fleet-http: FleetClient.execute over HTTP (POST /api/tasks?wait=1 on a keep-alive connection);
//   fleet-ws:   FleetClient over its WebSocket channel;
//   bullmq:     Queue.add + job.waitUntilFinished(QueueEvents).
// Runs `rounds` sequential round trips (after a warm-up) and/or a closed loop of `tasks` with `inflight` in
// the air, and prints one JSON line (with its own CPU per measured call; the loop phase also with the CPU
// and write syscalls it took in all). Not a benchmark itself.
// argv: one JSON object { mode, phase: 'seq'|'loop', dist, url, token, redisUrl, prefix, rounds, tasks, inflight,
//   warmUp }. The loop phase also prints the CPU the process spent in it (cpuMs).
// After its warm-up it prints `{"warm":true}` and waits for a line on stdin (or its end): the parent reads the
// broker's and worker's counters there, so theirs cover the measured calls only, as the client's own do.
import { writeCalls } from './support.mjs';
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const o = JSON.parse(process.argv[2]);
const WARM_UP = o.warmUp ?? 2000;

/** Tells the parent the warm-up is over and waits until it has read the other processes' counters. */
async function warmedUp() {
  process.stdout.write('{"warm":true}\n');
  await new Promise((go) => {
    process.stdin.once('data', go);
    process.stdin.once('end', go);
  });
  process.stdin.pause();
}

async function fleetSide() {
  const { FleetClient } = await import(pathToFileURL(resolve(o.dist, 'client/fleet-client.js')).href);
  const client = new FleetClient({
    url: o.url,
    ...(o.token ? { token: o.token } : {}),
    ...(o.mode === 'fleet-ws' ? { channel: 'websocket' } : {}),
  });
  return {
    run: async (i) => {
      const t = await client.execute('echo', { i });
      if (t.state !== 'succeeded')
        throw new Error(`task ${t.id} ended ${t.state}: ${JSON.stringify(t.error)}`);
    },
    close: async () => client.close?.(),
  };
}

async function bullSide() {
  const { Queue, QueueEvents } = await import('bullmq');
  const connection = { url: o.redisUrl, maxRetriesPerRequest: null };
  const q = new Queue('bench', { connection, prefix: o.prefix });
  // QueueEvents reads from '$' by default, and its first XREAD goes out some time after waitUntilReady: a job
  // that finished in between (the first of this client's, when an earlier client process left the worker
  // warm) would never be seen finished. Start right after the stream's last entry instead.
  const { Redis } = await import('ioredis');
  const probe = new Redis(o.redisUrl);
  const [last] = await probe.xrevrange(`${o.prefix}:bench:events`, '+', '-', 'COUNT', 1);
  await probe.quit();
  const ev = new QueueEvents('bench', { connection, prefix: o.prefix, lastEventId: last?.[0] ?? '0-0' });
  // 64 waiters at once each add a listener; that is the reference's own usage, not a leak.
  q.setMaxListeners(0);
  ev.setMaxListeners(0);
  await ev.waitUntilReady();
  await q.waitUntilReady();
  return {
    run: async (i) => {
      const job = await q.add('noop', { i });
      await job.waitUntilFinished(ev, 30_000);
    },
    close: async () => {
      await ev.close();
      await q.close();
    },
  };
}

/** This process's CPU (user + system) per call since `from`, in µs. */
function cpuPerCall(from, calls) {
  const d = process.cpuUsage(from);
  return (d.user + d.system) / calls;
}

const side = o.mode === 'bullmq' ? await bullSide() : await fleetSide();
const out = {};
if (o.phase === 'seq') {
  // Warm-up: connections, and the JIT of the broker's own code (a manager is a long-running process, and a fresh
  // one is still optimizing for its first thousand tasks or so; redis-server needs no warming).
  for (let i = 0; i < WARM_UP; i++) await side.run(i);
  await warmedUp();
  const times = new Float64Array(o.rounds);
  const cpu0 = process.cpuUsage();
  const writes0 = writeCalls();
  for (let i = 0; i < o.rounds; i++) {
    const t0 = performance.now();
    await side.run(i);
    times[i] = performance.now() - t0;
  }
  out.clientCpu = cpuPerCall(cpu0, o.rounds);
  out.clientWrites = (writeCalls() - writes0) / o.rounds;
  times.sort();
  const at = (p) => times[Math.min(times.length - 1, Math.floor((times.length * p) / 100))];
  out.p50 = at(50);
  out.p99 = at(99);
} else {
  for (let i = 0; i < WARM_UP; i++) await side.run(i); // warm-up
  await warmedUp();
  let next = 0;
  const cpu0 = process.cpuUsage();
  const writes0 = writeCalls();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: o.inflight }, async () => {
      while (next < o.tasks) await side.run(next++);
    }),
  );
  out.perSecond = o.tasks / ((performance.now() - t0) / 1000);
  const cpu = process.cpuUsage(cpu0);
  out.cpuMs = (cpu.user + cpu.system) / 1000;
  out.writes = writeCalls() - writes0;
  out.clientCpu = cpuPerCall(cpu0, o.tasks);
}
await side.close();
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(0);
