import { fork } from 'node:child_process';
const here = (p) => new URL(p, import.meta.url).pathname;
const wait = (c) => new Promise((r) => c.once('message', r));
const w = fork(here('./lib/ws-relay.mjs'), ['worker', '{}']);
const { port: workerPort } = await wait(w);
const b = fork(here('./lib/ws-relay.mjs'), ['broker', JSON.stringify({ workerPort })]);
const { port: brokerPort } = await wait(b);
console.log('W', w.pid, 'M', b.pid);
const c = fork(here('./lib/ws-relay.mjs'), [
  'client',
  JSON.stringify({ brokerPort, rounds: 60000, warmUp: 2000 }),
]);
console.log('C', c.pid);
await new Promise((r) => c.once('exit', r));
w.kill();
b.kill();
