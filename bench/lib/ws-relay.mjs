// The floor under the WebSocket channel's round trip in bench/manager.mjs: the same three processes and four
// socket hops (client → broker → worker → broker → client) over the `ws` library, with no Fleet code at all —
// the broker passes each frame on as it came, the worker sends it back. Whatever this takes, no broker in
// Node on this path can take less. Not a benchmark itself.
// argv: role ('worker' | 'broker' | 'client') and a JSON object: broker { workerPort }, client { brokerPort,
//   rounds, warmUp }. worker and broker tell their parent their port over IPC; the client prints one JSON line
//   { p50, p99, writes } (ms, and its write syscalls per round trip).
import { WebSocket, WebSocketServer } from 'ws';
import { writeCalls } from './support.mjs';

const [role, raw] = process.argv.slice(2);
const o = JSON.parse(raw ?? '{}');

function listen(onConnection) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  wss.on('connection', onConnection);
  wss.on('listening', () => process.send({ port: wss.address().port }));
}

const open = (url) =>
  new Promise((res, rej) => {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    ws.once('open', () => res(ws));
    ws.once('error', rej);
  });

if (role === 'worker') {
  listen((ws) => ws.on('message', (data, binary) => ws.send(data, { binary })));
} else if (role === 'broker') {
  const up = await open(`ws://127.0.0.1:${o.workerPort}`);
  let client;
  up.on('message', (data, binary) => client?.send(data, { binary }));
  listen((ws) => {
    client = ws;
    ws.on('message', (data, binary) => up.send(data, { binary }));
  });
} else if (role === 'client') {
  const ws = await open(`ws://127.0.0.1:${o.brokerPort}`);
  let answer;
  ws.on('message', () => answer());
  // A frame the size of a small task submission, so the kernel's copy is not nothing.
  const frame = JSON.stringify({ type: 'execute', rid: 1, task: { capability: 'echo', payload: { i: 0 } } });
  const roundTrip = () =>
    new Promise((res) => {
      answer = res;
      ws.send(frame);
    });
  for (let i = 0; i < o.warmUp; i++) await roundTrip();
  const times = new Float64Array(o.rounds);
  const w0 = writeCalls();
  for (let i = 0; i < o.rounds; i++) {
    const t0 = performance.now();
    await roundTrip();
    times[i] = performance.now() - t0;
  }
  const perTrip = (writeCalls() - w0) / o.rounds;
  times.sort();
  const at = (p) => times[Math.min(times.length - 1, Math.floor((times.length * p) / 100))];
  process.stdout.write(`${JSON.stringify({ p50: at(50), p99: at(99), writes: perTrip })}\n`);
  ws.close();
  process.exit(0);
} else {
  throw new Error(`unknown role ${role}`);
}
