// The MCP gateway's cost (issue 18): a `tools/call` of echo through the manager's /mcp (the MCP SDK's own
// Client over Streamable HTTP) against the same task through FleetClient over HTTP (`execute`, the
// submit-and-wait path). Aim: MCP ≤ FleetClient + 1 ms at p50.
//
// Layout, the same for both sides: the manager and its echo worker run in `fleet up` (their own processes);
// each client runs alone in its own process (bench/lib/mcp-bench-client.mjs), driven over IPC and timing
// its own calls. Rounds alternate the two sides, and which goes first, so noise hits both alike.
// Then a burst of back-to-back calls per side measures CPU per call of every process (client, manager,
// worker): the part of the difference that grows when the machine is loaded.
//
// Build first (`npm run build`); then `node bench/mcp.mjs [rounds=1000] [burst=2000]`;
// `--dist DIR` runs another build (another commit's) under the same conditions; `--cpu-prof DIR` writes V8
// profiles of the manager and both clients (summarize with bench/lib/profile-top.mjs).
import { fork, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { freePort, until } from './lib/support.mjs';

const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log(
    'usage: node bench/mcp.mjs [rounds=1000] [burst=2000] [--dist DIR] [--cpu-prof DIR]   (after npm run build)',
  );
  process.exit(0);
}
const option = (name) => {
  const i = args.indexOf(name);
  return i < 0 ? undefined : args.splice(i, 2)[1];
};
const dist = resolve(option('--dist') ?? 'dist');
const profDir = option('--cpu-prof');
const profile = (name) =>
  profDir ? ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-name', `${name}.cpuprofile`] : [];
const [rounds = 1000, burst = 2000] = args.map(Number);
const pct = (xs, p) =>
  xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];
const ms = (x) => `${x.toFixed(2)} ms`;
const signed = (x) => `${x >= 0 ? '+' : ''}${ms(x)}`;
const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(', ');

/** CPU time (user + system) a process has used, in ms, from /proc (Linux). */
function cpuMs(pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // clock ticks, USER_HZ = 100
}
function childrenOf(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}

/** A client process; `ask` sends one command and resolves with its reply. */
function clientProcess(kind, url) {
  const proc = fork(
    fileURLToPath(new URL('./lib/mcp-bench-client.mjs', import.meta.url)),
    [kind, dist, url],
    {
      stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
      execArgv: profile(`client-${kind}`),
    },
  );
  const warnings = new Map();
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    for (const line of d.split('\n').filter(Boolean)) {
      const key = line.replace(/\d+/g, 'N');
      warnings.set(key, (warnings.get(key) ?? 0) + 1);
    }
  });
  let pending;
  const ready = new Promise((resolve, reject) => {
    pending = { resolve, reject };
    proc.once('exit', (code) => pending?.reject(new Error(`${kind} client exited with ${code}`)));
  });
  proc.on('message', (m) => {
    const p = pending;
    pending = undefined;
    if (m.error) p?.reject(new Error(`${kind} client: ${m.error}`));
    else p?.resolve(m);
  });
  return {
    kind,
    pid: proc.pid,
    warnings,
    ready,
    ask: (m) =>
      new Promise((resolve, reject) => {
        pending = { resolve, reject };
        proc.send(m);
      }),
    exited: new Promise((r) => proc.once('exit', r)),
    kill: () => proc.exitCode === null && proc.kill('SIGKILL'),
  };
}

const port = await freePort();
const url = `http://127.0.0.1:${port}`;
// `fleet up` as bench/lib/support.mjs starts it, from the chosen build and, when asked, profiled.
const up = spawn(
  process.execPath,
  [...profile('manager'), resolve(dist, 'cli/main.js'), 'up', '--only', 'echo'],
  {
    stdio: 'ignore',
    env: {
      ...process.env,
      FLEET_LOG_LEVEL: 'error',
      FLEET_PORT: String(port),
      WORKER_ECHO_PORT: String(await freePort()),
    },
  },
);
const upExited = new Promise((r) => up.once('exit', r));
const clients = [];
try {
  await until(async () => {
    const r = await fetch(`${url}/api/capabilities`);
    return r.ok && (await r.json()).capabilities.some((c) => c.capability === 'echo');
  }, 'fleet up with an echo worker');
  const [workerPid] = childrenOf(up.pid);
  const http = clientProcess('http', url);
  const mcp = clientProcess('mcp', url);
  clients.push(http, mcp);
  await Promise.all([http.ready, mcp.ready]);
  const loadBefore = load();

  for (let i = 0; i < 200; i++) for (const c of clients) await c.ask({ op: 'call' });
  const times = { http: [], mcp: [] };
  for (let i = 0; i < rounds; i++) {
    for (const c of i % 2 ? [mcp, http] : [http, mcp]) times[c.kind].push((await c.ask({ op: 'call' })).ms);
  }

  // CPU per call: bursts of back-to-back calls, the sides alternating, each process's CPU read around each.
  const BURSTS = 4;
  const cpu = Object.fromEntries(
    clients.map((c) => [c.kind, { wall: 0, client: 0, manager: 0, worker: workerPid ? 0 : NaN }]),
  );
  const n = Math.ceil(burst / BURSTS);
  for (let b = 0; b < BURSTS; b++) {
    for (const c of b % 2 ? [mcp, http] : [http, mcp]) {
      const manager = cpuMs(up.pid);
      const worker = workerPid ? cpuMs(workerPid) : NaN;
      const r = await c.ask({ op: 'burst', n });
      const sum = cpu[c.kind];
      sum.wall += r.wallMs / (n * BURSTS);
      sum.client += r.cpuMs / (n * BURSTS);
      sum.manager += (cpuMs(up.pid) - manager) / (n * BURSTS);
      if (workerPid) sum.worker += (cpuMs(workerPid) - worker) / (n * BURSTS);
    }
  }
  const loadAfter = load();
  for (const c of clients) await c.ask({ op: 'close' });
  await Promise.all(clients.map((c) => c.exited));

  const row = (name, xs) =>
    `${name.padEnd(34)} p50 ${ms(pct(xs, 50)).padStart(9)}   p99 ${ms(pct(xs, 99)).padStart(9)}`;
  console.log(`echo round trip, ${rounds} sequential calls each, alternating (fleet up, loopback)`);
  console.log(`load average ${loadBefore} before, ${loadAfter} after`);
  console.log(row('FleetClient.execute (HTTP)', times.http));
  console.log(row('MCP tools/call via /mcp', times.mcp));
  const d50 = pct(times.mcp, 50) - pct(times.http, 50);
  const d99 = pct(times.mcp, 99) - pct(times.http, 99);
  console.log(
    `MCP - HTTP: p50 ${signed(d50)} (aim ≤ +1 ms), p99 ${signed(d99)}; ratio at p50 ${(pct(times.mcp, 50) / pct(times.http, 50)).toFixed(2)}`,
  );
  console.log(
    `\nper call, ${n * BURSTS} back-to-back calls per side in ${BURSTS} alternating bursts (ms; CPU of manager and worker from /proc)`,
  );
  const cols = ['wall', 'client', 'manager', 'worker'];
  // wall: elapsed per call in the burst; client, manager, worker: CPU time (user + system) per call.
  console.log(`${''.padEnd(34)} ${cols.map((k) => k.padStart(8)).join(' ')}`);
  const line = (name, v) => `${name.padEnd(34)} ${cols.map((k) => v[k].toFixed(3).padStart(8)).join(' ')}`;
  console.log(line('FleetClient.execute (HTTP)', cpu.http));
  console.log(line('MCP tools/call via /mcp', cpu.mcp));
  const diff = Object.fromEntries(cols.map((k) => [k, cpu.mcp[k] - cpu.http[k]]));
  console.log(line('MCP - HTTP', diff));
  for (const c of clients) {
    for (const [w, n] of c.warnings) console.log(`(${c.kind} client stderr, ${n}x) ${w.slice(0, 200)}`);
  }
} finally {
  for (const c of clients) c.kill();
  up.kill('SIGTERM');
  // A profile is written when the process exits.
  await upExited;
}
