// python-sandbox benchmark: warm print(1) through the worker's WebSocket vs a bare persistent python3 over a
// pipe (the floor), cold new session to first result, and the worker's tree RSS with 5 live sessions.
// Run: npx tsc -p tsconfig.build.json && node bench/python-sandbox.mjs
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { pino } from 'pino';
import { WebSocket } from 'ws';
import { WORKER_SECTIONS } from '../dist/config/schema.js';
import { WorkerServer } from '../dist/workers/common/server.js';
import { createPythonSandboxKind } from '../dist/workers/python-sandbox/index.js';
import { treeRss } from '../dist/workers/python-sandbox/proc-stats.js';
import { PROTOCOL_VERSION } from '../dist/protocol/messages.js';

const N = Number(process.env.BENCH_N ?? 200);
const pct = (xs, p) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];

async function bareBaseline() {
  const py = spawn(
    '/usr/bin/python3',
    [
      '-I',
      '-u',
      '-c',
      'import sys\nfor line in sys.stdin:\n    exec(line)\n    sys.stdout.write("\\x00\\n"); sys.stdout.flush()',
    ],
    { stdio: ['pipe', 'pipe', 'inherit'] },
  );
  let buf = '';
  let waiter;
  py.stdout.on('data', (d) => {
    buf += d;
    if (buf.includes('\x00\n')) {
      buf = '';
      waiter?.();
    }
  });
  const once = () =>
    new Promise((r) => {
      waiter = r;
      py.stdin.write('print(1)\n');
    });
  for (let i = 0; i < 20; i++) await once();
  const times = [];
  for (let i = 0; i < N; i++) {
    const t = process.hrtime.bigint();
    await once();
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  py.kill();
  return times;
}

function connect(endpoint) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(endpoint);
    const pending = new Map();
    ws.on('message', (raw) => {
      const msg = JSON.parse(String(raw));
      if (msg.type === 'hello')
        ws.send(
          JSON.stringify({
            type: 'welcome',
            protocolVersion: PROTOCOL_VERSION,
            managerId: 'bench',
            heartbeatIntervalMs: 60_000,
          }),
        );
      if (msg.type === 'heartbeat') resolve({ ws, assign });
      if (msg.type === 'task.result' || msg.type === 'task.error') pending.get(msg.taskId)?.(msg);
    });
    ws.on('error', reject);
    function assign(capability, payload, sessionId) {
      const taskId = randomUUID();
      return new Promise((r) => {
        pending.set(taskId, r);
        ws.send(
          JSON.stringify({
            type: 'task.assign',
            taskId,
            attempt: 1,
            leaseToken: 'l',
            capability,
            payload,
            deadline: Date.now() + 60_000,
            timeoutMs: 60_000,
            ...(sessionId ? { sessionId } : {}),
          }),
        );
      });
    }
  });
}

const workspace = mkdtempSync(join(tmpdir(), 'fleet-bench-py-'));
const config = WORKER_SECTIONS.python_sandbox.parse({
  port: 0,
  workspace,
  sandbox: { pool_size: 2 },
});
const server = new WorkerServer({
  kind: createPythonSandboxKind(config),
  config,
  logger: pino({ level: 'silent' }),
});
await server.start();
const client = await connect(server.endpoint);

const bare = await bareBaseline();
const s = 'bench-warm';
for (let i = 0; i < 20; i++) await client.assign('python-execution', { code: 'print(1)' }, s);
const warm = [];
for (let i = 0; i < N; i++) {
  const t = process.hrtime.bigint();
  const a = await client.assign('python-execution', { code: 'print(1)' }, s);
  if (a.type !== 'task.result') throw new Error(JSON.stringify(a.error));
  warm.push(Number(process.hrtime.bigint() - t) / 1e6);
}
// Cold: a new session each time, pool warm before each (what a new agent sees), and with the pool drained.
const coldPooled = [];
const coldNoPool = [];
for (let i = 0; i < 8; i++) {
  await new Promise((r) => setTimeout(r, 1500));
  let t = Date.now();
  await client.assign('python-execution', { code: 'print(1)' }, `cold-p-${i}`);
  coldPooled.push(Date.now() - t);
  // pool now has one fewer; take the rest immediately so the next one is started from scratch
  t = Date.now();
  await client.assign('python-execution', { code: 'print(1)' }, `cold-a-${i}`);
  t = Date.now();
  await client.assign('python-execution', { code: 'print(1)' }, `cold-n-${i}`);
  coldNoPool.push(Date.now() - t);
  await client.assign('python-execution', { closeSession: true }, `cold-p-${i}`);
  await client.assign('python-execution', { closeSession: true }, `cold-a-${i}`);
  await client.assign('python-execution', { closeSession: true }, `cold-n-${i}`);
}
for (let i = 0; i < 5; i++)
  await client.assign(
    'python-execution',
    { code: 'import numpy as np\nx = np.ones(1000)\nprint(x.sum())' },
    `five-${i}`,
  );
const rss = treeRss(process.pid);

// file-operations: write then read back a 1 MiB file in one session (base64 both ways, as an agent would).
const MiB = Buffer.alloc(1024 * 1024, 7).toString('base64');
const fileN = Math.max(10, Math.floor(N / 5));
const fsSession = 'bench-files';
const writes = [];
const reads = [];
for (let i = 0; i < fileN + 3; i++) {
  let t = process.hrtime.bigint();
  const w = await client.assign(
    'file-operations',
    { op: 'write', path: 'big.bin', content: MiB, encoding: 'base64' },
    fsSession,
  );
  if (w.type !== 'task.result') throw new Error(JSON.stringify(w.error));
  const wms = Number(process.hrtime.bigint() - t) / 1e6;
  t = process.hrtime.bigint();
  const r = await client.assign(
    'file-operations',
    { op: 'read', path: 'big.bin', encoding: 'base64' },
    fsSession,
  );
  if (r.type !== 'task.result' || r.output.size !== 1024 * 1024) throw new Error(JSON.stringify(r.error));
  const rms = Number(process.hrtime.bigint() - t) / 1e6;
  if (i >= 3) {
    writes.push(wms);
    reads.push(rms);
  }
}

const rows = [
  [
    'warm print(1) p50 (ms)',
    pct(warm, 50).toFixed(2),
    pct(bare, 50).toFixed(2),
    (pct(warm, 50) / pct(bare, 50)).toFixed(1) + 'x',
    '<= 5 ms, <= 3x',
  ],
  [
    'warm print(1) p95 (ms)',
    pct(warm, 95).toFixed(2),
    pct(bare, 95).toFixed(2),
    (pct(warm, 95) / pct(bare, 95)).toFixed(1) + 'x',
    '',
  ],
  ['cold session, pool ready, p50 (ms)', String(pct(coldPooled, 50)), '', '', '<= 250 ms'],
  ['cold session, no pool, p50 (ms)', String(pct(coldNoPool, 50)), '', '', ''],
  ['file-operations write 1 MiB p50 (ms)', pct(writes, 50).toFixed(2), '', '', ''],
  ['file-operations read 1 MiB p50 (ms)', pct(reads, 50).toFixed(2), '', '', ''],
  [
    'tree RSS, 5 sessions + pool (MB)',
    (rss.bytes / 1048576).toFixed(0),
    '',
    `${rss.processes} procs`,
    '< 1024 MB',
  ],
];
console.log(
  `python-sandbox bench (N=${N}, loadavg ${loadavg()
    .map((x) => x.toFixed(1))
    .join(' ')}, isolation ${server ? 'see /health' : ''})`,
);
console.log(['metric', 'worker (ws)', 'bare pipe', 'ratio', 'aim'].join(' | '));
for (const r of rows) console.log(r.join(' | '));
client.ws.close();
await server.stop({ graceMs: 1000 });
rmSync(workspace, { recursive: true, force: true });
process.exit(0);
