// Browser worker benchmark (run after `npx tsc -p tsconfig.build.json`): a screenshot of a local page
//   1. through the worker's WebSocket (real runtime, real pool, per-task context + policy proxy),
//   2. raw playwright-core on a warm browser, new context per shot (the limit),
//   3. launch-per-task (what many scripts do),
// then throughput at concurrency 4 through the worker, and the worker's peak PSS (3 browsers, 4 tasks), and the
// peak PSS while one of 4 tasks is a memory bomb (each browser sits in a memory cgroup at memory_limit_mb: the
// bomb's renderer is OOM-killed alone, the 3 ordinary tasks must succeed).
// Prints a side-by-side table. Loopback only.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { pino } from 'pino';
import { chromium } from 'playwright-core';
import { WebSocket } from 'ws';
import { parseConfig } from '../dist/config/load.js';
import { createBrowserKind } from '../dist/workers/browser/index.js';
import { treePssBytes } from '../dist/workers/browser/process-tree.js';
import { WorkerServer } from '../dist/workers/common/server.js';

const EXE = process.env.BROWSER_EXECUTABLE_PATH ?? '/usr/lib/chromium/chromium-headless-shell';
const N = Number(process.env.BENCH_N ?? 30);
const N_LAUNCH = Number(process.env.BENCH_N_LAUNCH ?? 8);
const THROUGHPUT_TASKS = Number(process.env.BENCH_TASKS ?? 40);
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

const PAGE = `<!doctype html><html><head><title>Bench</title><style>body{font:16px sans-serif} .c{display:inline-block;width:90px;height:60px;margin:4px;background:linear-gradient(#8ac,#fff)}</style></head>
<body><h1>Benchmark page</h1>${Array.from({ length: 60 }, (_, i) => `<div class="c">${i}</div>`).join('')}</body></html>`;

const site = createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE));
await new Promise((r) => site.listen(0, '127.0.0.1', r));
const url = `http://127.0.0.1:${site.address().port}/`;

const stats = (ms) => {
  const s = [...ms].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { median: q(0.5), p90: q(0.9), mean: s.reduce((a, b) => a + b, 0) / s.length };
};
const now = () => performance.now();

// --- 1. The worker, through its WebSocket
const config = parseConfig({
  browser_worker: {
    port: 0,
    timeout: '120s',
    browser_config: {
      pool_size: 3,
      executable_path: EXE,
      url_policy: { allowed_addresses: [`127.0.0.1:${site.address().port}`] },
    },
  },
}).browser_worker;
const kind = createBrowserKind(config);
const server = new WorkerServer({ kind, config, logger: pino({ level: 'silent' }) });
await server.start();

const ws = new WebSocket(server.endpoint);
const pending = new Map();
let hello;
ws.on('message', (data) => {
  const msg = JSON.parse(String(data));
  if (msg.type === 'hello') {
    ws.send(
      JSON.stringify({
        type: 'welcome',
        protocolVersion: msg.protocolVersion,
        managerId: 'bench',
        heartbeatIntervalMs: 1000,
      }),
    );
  }
  if (msg.type === 'heartbeat') hello?.(msg);
  if ((msg.type === 'task.result' || msg.type === 'task.error') && pending.has(msg.taskId)) {
    pending.get(msg.taskId)(msg);
    pending.delete(msg.taskId);
  }
});
await new Promise((resolve, reject) => {
  hello = (m) => {
    hello = undefined;
    resolve(m);
  };
  ws.once('error', reject);
});
function viaWorker(payload, capability = 'screenshot') {
  const taskId = randomUUID();
  const timeoutMs = 60_000;
  return new Promise((resolve, reject) => {
    pending.set(taskId, (msg) =>
      msg.type === 'task.result'
        ? resolve(msg)
        : reject(new Error(`${msg.error.code}: ${msg.error.message}`)),
    );
    ws.send(
      JSON.stringify({
        type: 'task.assign',
        taskId,
        attempt: 1,
        leaseToken: randomUUID(),
        capability,
        payload,
        deadline: Date.now() + timeoutMs,
        timeoutMs,
      }),
    );
  });
}
const shot = { url, options: { viewport: { width: 800, height: 600 } } };
for (let i = 0; i < 5; i++) await viaWorker(shot); // warm-up
const workerMs = [];
let bytes = 0;
for (let i = 0; i < N; i++) {
  const t = now();
  const r = await viaWorker(shot);
  workerMs.push(now() - t);
  bytes = r.output.bytes;
}

// --- 2. Raw playwright-core on a warm browser (the limit): new context + page per shot, like the worker
const warm = await chromium.launch({ executablePath: EXE, args: FLAGS, headless: true });
async function rawShot(browser) {
  const ctx = await browser.newContext({ viewport: { width: 800, height: 600 } });
  const page = await ctx.newPage();
  await page.goto(url);
  const png = await page.screenshot({ type: 'png' });
  await ctx.close();
  return png;
}
for (let i = 0; i < 5; i++) await rawShot(warm);
const rawMs = [];
for (let i = 0; i < N; i++) {
  const t = now();
  await rawShot(warm);
  rawMs.push(now() - t);
}
await warm.close();

// --- 3. Launch per task
const launchMs = [];
for (let i = 0; i < N_LAUNCH; i++) {
  const t = now();
  const b = await chromium.launch({ executablePath: EXE, args: FLAGS, headless: true });
  await rawShot(b);
  await b.close();
  launchMs.push(now() - t);
}

// --- 4. Throughput at concurrency 4 through the worker, sampling the worker's PSS (itself + browsers)
let peakPss = 0;
let sampling = true;
const sampler = (async () => {
  while (sampling) {
    peakPss = Math.max(peakPss, await treePssBytes(process.pid));
    await new Promise((r) => setTimeout(r, 100));
  }
})();
let next = 0;
let failures = 0;
const t0 = now();
await Promise.all(
  Array.from({ length: 4 }, async () => {
    while (next < THROUGHPUT_TASKS) {
      next++;
      await viaWorker(shot).catch(() => failures++);
    }
  }),
);
const elapsed = (now() - t0) / 1000;
sampling = false;
await sampler;

// --- 5. One memory bomb and 3 ordinary tasks at once, sampling the worker's PSS
const BOMB = `<title>bomb</title><script>
  const keep = [];
  (function grow() {
    for (let i = 0; i < 4; i++) { const b = new Uint8Array(16 * 1024 * 1024); b.fill(7); keep.push(b); }
    setTimeout(grow, 5);
  })();
</script>`;
let bombPeak = 0;
sampling = true;
const bombSampler = (async () => {
  while (sampling) {
    bombPeak = Math.max(bombPeak, await treePssBytes(process.pid));
    await new Promise((r) => setTimeout(r, 50));
  }
})();
const slowShot = { url, options: { viewport: { width: 800, height: 600 }, delayMs: 3000 } };
const [bomb, ...ordinary] = await Promise.allSettled([
  viaWorker({ html: BOMB, options: { delayMs: 30_000 } }),
  viaWorker(slowShot),
  viaWorker(slowShot),
  viaWorker(slowShot),
]);
sampling = false;
await bombSampler;
const bombOutcome = bomb.status === 'rejected' ? bomb.reason.message.split(':')[0] : 'succeeded (!)';
const ordinaryOk = ordinary.filter((r) => r.status === 'fulfilled').length;
const { memoryLimit, network } = kind.pool?.snapshot() ?? {};

ws.close();
await server.stop({ graceMs: 2000 });
site.close();

const w = stats(workerMs);
const r = stats(rawMs);
const l = stats(launchMs);
const fmt = (n) => n.toFixed(1).padStart(9);
console.log(
  `\nScreenshot of a local page (800x600 PNG, ${bytes} bytes), ${EXE.split('/').pop()}, ${N} runs (${N_LAUNCH} for launch-per-task)\n`,
);
console.log('approach                                 median ms    p90 ms   mean ms');
console.log(`worker via WebSocket (pool + proxy)     ${fmt(w.median)} ${fmt(w.p90)} ${fmt(w.mean)}`);
console.log(`raw playwright-core, warm browser       ${fmt(r.median)} ${fmt(r.p90)} ${fmt(r.mean)}`);
console.log(`launch per task                         ${fmt(l.median)} ${fmt(l.p90)} ${fmt(l.mean)}`);
console.log('');
console.log(`worker / warm limit          ${(w.median / r.median).toFixed(2)}x   (aim <= 1.3x)`);
console.log(`launch-per-task / worker     ${(l.median / w.median).toFixed(2)}x   (aim >= 3x)`);
console.log(
  `throughput, concurrency 4    ${(THROUGHPUT_TASKS / elapsed).toFixed(2)} tasks/s (${THROUGHPUT_TASKS} tasks, ${failures} failed)`,
);
console.log(
  `peak PSS, worker + 3 browsers, 4 tasks in flight: ${(peakPss / 1024 / 1024).toFixed(0)} MB   (aim < 1024 MB)`,
);
console.log(
  `peak PSS, worker + 3 browsers, 1 memory bomb + 3 ordinary: ${(bombPeak / 1024 / 1024).toFixed(0)} MB   (aim < 1229 MB); bomb: ${bombOutcome}; ordinary ok: ${ordinaryOk}/3; limit held by: ${memoryLimit}; browsers' network: ${network}`,
);
console.log(
  `load average at the end: ${(await import('node:os'))
    .loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')} on ${(await import('node:os')).availableParallelism()} cores`,
);
