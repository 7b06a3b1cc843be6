// The MCP gateway's cost (issue 18): a `tools/call` of echo through the manager's /mcp (the MCP SDK's own
// Client over Streamable HTTP) against the same task through FleetClient over HTTP (`execute`, the
// submit-and-wait path), side by side in the same run, alternating so noise hits both alike.
// The manager and its echo worker run in `fleet up` (their own processes); the clients run here.
// Build first (`npm run build`); then `node bench/mcp.mjs [rounds]`. Aim: MCP ≤ FleetClient + 1 ms at p50.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { FleetClient } from '../dist/client/fleet-client.js';
import { fleetProcess, freePort, until } from './lib/support.mjs';

const [rounds = 1000] = process.argv.slice(2).map(Number);
const pct = (xs, p) =>
  xs.slice().sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((xs.length * p) / 100))];
const ms = (x) => `${x.toFixed(2)} ms`;

const port = await freePort();
const url = `http://127.0.0.1:${port}`;
const up = fleetProcess(['up', '--only', 'echo'], {
  FLEET_PORT: String(port),
  WORKER_ECHO_PORT: String(await freePort()),
});
try {
  await until(async () => {
    const r = await fetch(`${url}/api/capabilities`);
    return r.ok && (await r.json()).capabilities.some((c) => c.capability === 'echo');
  }, 'fleet up with an echo worker');
  const fleet = new FleetClient({ url });
  const mcp = new Client({ name: 'bench', version: '1' });
  await mcp.connect(new StreamableHTTPClientTransport(new URL('/mcp', url)));
  await mcp.listTools();
  const payload = { hello: 'bench', n: 1 };
  const viaHttp = [];
  const viaMcp = [];
  for (let i = 0; i < 100; i++) {
    await fleet.execute('echo', payload);
    await mcp.callTool({ name: 'echo', arguments: payload });
  }
  for (let i = 0; i < rounds; i++) {
    let t = performance.now();
    const task = await fleet.execute('echo', payload);
    viaHttp.push(performance.now() - t);
    if (task.state !== 'succeeded') throw new Error(`echo over HTTP ended ${task.state}`);
    t = performance.now();
    const r = await mcp.callTool({ name: 'echo', arguments: payload });
    viaMcp.push(performance.now() - t);
    if (r.isError) throw new Error(`echo over MCP failed: ${JSON.stringify(r.content)}`);
  }
  await mcp.close();
  const row = (name, xs) =>
    `${name.padEnd(34)} p50 ${ms(pct(xs, 50)).padStart(9)}   p99 ${ms(pct(xs, 99)).padStart(9)}`;
  console.log(`echo round trip, ${rounds} sequential calls each (fleet up, loopback)`);
  console.log(row('FleetClient.execute (HTTP)', viaHttp));
  console.log(row('MCP tools/call via /mcp', viaMcp));
  const d50 = pct(viaMcp, 50) - pct(viaHttp, 50);
  console.log(
    `MCP - HTTP at p50: ${d50 >= 0 ? '+' : ''}${ms(d50)} (aim ≤ +1 ms), ratio ${(pct(viaMcp, 50) / pct(viaHttp, 50)).toFixed(2)}`,
  );
} finally {
  up.kill('SIGTERM');
}
