// One client process of bench/mcp.mjs, alone in its own process so the two sides share nothing but the
// manager: `http` is FleetClient.execute over HTTP, `mcp` the MCP SDK's own Client over Streamable HTTP
// calling the same capability as a tool. Driven over IPC by the bench; it times each call itself, so the
// IPC hop is outside the measured time. Not a benchmark itself.
// argv: <http|mcp> <dist dir> <manager url>
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [kind, dist, url] = process.argv.slice(2);
const payload = { hello: 'bench', n: 1 };

async function open() {
  if (kind === 'http') {
    const { FleetClient } = await import(pathToFileURL(resolve(dist, 'client/fleet-client.js')).href);
    const fleet = new FleetClient({ url });
    return {
      call: async () => {
        const task = await fleet.execute('echo', payload);
        if (task.state !== 'succeeded') throw new Error(`echo over HTTP ended ${task.state}`);
      },
      close: async () => undefined,
    };
  }
  const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
  const { StreamableHTTPClientTransport } =
    await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
  const mcp = new Client({ name: 'bench', version: '1' });
  await mcp.connect(new StreamableHTTPClientTransport(new URL('/mcp', url)));
  await mcp.listTools();
  return {
    call: async () => {
      const r = await mcp.callTool({ name: 'echo', arguments: payload });
      if (r.isError) throw new Error(`echo over MCP failed: ${JSON.stringify(r.content)}`);
    },
    close: () => mcp.close(),
  };
}

const side = await open();
process.on('message', async (m) => {
  try {
    if (m.op === 'call') {
      const t = performance.now();
      await side.call();
      process.send({ ms: performance.now() - t });
    } else if (m.op === 'burst') {
      // Back to back, for CPU per call: what this side costs each process, whatever else loads the machine.
      const cpu = process.cpuUsage();
      const t = performance.now();
      for (let i = 0; i < m.n; i++) await side.call();
      const used = process.cpuUsage(cpu);
      process.send({ wallMs: performance.now() - t, cpuMs: (used.user + used.system) / 1000 });
    } else if (m.op === 'close') {
      await side.close();
      process.send({ closed: true });
      process.disconnect();
    }
  } catch (err) {
    process.send({ error: String(err?.stack ?? err) });
  }
});
process.send({ ready: true });
