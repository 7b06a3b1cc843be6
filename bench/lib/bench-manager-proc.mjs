// The Fleet manager of bench/manager.mjs in a process of its own: serves the API on a free loopback port,
// dials the echo worker given on the command line, tells the parent its URL, and answers `cpu` requests with
// process.cpuUsage() (so the bench can charge the manager's CPU to the tasks it ran). Not a benchmark itself.
// argv: <dist directory> <worker endpoint> [token]
import { pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const [dist, endpoint, token] = process.argv.slice(2);
const load = (p) => import(pathToFileURL(resolve(dist, p)).href);
const { parseConfig } = await load('config/load.js');
const { serveManager } = await load('cli/serve-manager.js');

const config = parseConfig({
  manager: {
    host: '127.0.0.1',
    port: 0,
    log_level: 'error',
    ...(token ? { token } : {}),
    queue: { max_size: 1_000_000 },
    health: { heartbeat_interval: '1s' },
  },
});
const served = await serveManager(config);
for (let tries = 0; ; tries++) {
  const r = await served.manager.registerWorker({ endpoint });
  if (r.workerId) break;
  if (tries > 200) throw new Error(`worker at ${endpoint} never connected: ${r.error}`);
  await new Promise((res) => setTimeout(res, 50));
}
process.on('message', async (m) => {
  if (m === 'cpu') process.send({ cpu: process.cpuUsage() });
  if (m === 'stop') {
    await served.stop();
    process.exit(0);
  }
});
process.send({ url: served.url });
