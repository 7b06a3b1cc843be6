// figma-mcp benchmark: a design fetch + simplify of the largest fixture through MCP (Streamable HTTP, the
// SDK's Client) against the limit (a bare fetch + JSON.parse of the same nodes from the fake), a repeated
// call served from cache, and three concurrent tool calls. Run after `npm run build`: node bench/figma.mjs
import { performance } from 'node:perf_hooks';
import Fastify from 'fastify';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { WORKER_SECTIONS } from '../dist/config/schema.js';
import { createFigmaKind, startFakeFigma, MARKETING_KEY } from '../dist/workers/figma-mcp/index.js';

const N = Number(process.env.BENCH_N ?? 40);
const NODE = '2:1';
const fake = await startFakeFigma();
const config = WORKER_SECTIONS.figma_mcp.parse({
  port: 0,
  figma_config: {
    api_token: fake.token,
    base_url: fake.url,
    rate_limits: { tier1: { per_minute: 1e6 }, tier2: { per_minute: 1e6 }, tier3: { per_minute: 1e6 } },
  },
});
const kind = createFigmaKind(config);
const app = Fastify({ logger: false });
await kind.routes(app);
await app.listen({ host: '127.0.0.1', port: 0 });
const client = new Client({ name: 'bench', version: '1' });
await client.connect(
  new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${app.server.address().port}/mcp`)),
);

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { p50: q(0.5), p95: q(0.95), mean: s.reduce((a, b) => a + b, 0) / s.length };
};
async function measure(fn, before) {
  for (let i = 0; i < 3; i++) {
    before?.();
    await fn();
  }
  const out = [];
  for (let i = 0; i < N; i++) {
    before?.();
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return stats(out);
}

const bare = async () => {
  const res = await fetch(`${fake.url}/v1/files/${MARKETING_KEY}/nodes?ids=${encodeURIComponent(NODE)}`, {
    headers: { 'X-Figma-Token': fake.token },
  });
  JSON.parse(await res.text());
};
const design = async () => {
  const r = await client.callTool({
    name: 'figma_get_design',
    arguments: { file: MARKETING_KEY, node_ids: [NODE] },
  });
  if (r.isError) throw new Error(r.content[0].text);
};
const clear = () => kind.core.client.clearCache();

const nodesBytes = (
  await (
    await fetch(`${fake.url}/v1/files/${MARKETING_KEY}/nodes?ids=${encodeURIComponent(NODE)}`, {
      headers: { 'X-Figma-Token': fake.token },
    })
  ).text()
).length;
const limit = await measure(bare);
const uncached = await measure(design, clear);
const cached = await measure(design);
const small = await measure(() =>
  client.callTool({ name: 'figma_list_projects', arguments: { team_id: fake.teamId } }),
);
const coreCached = await measure(() =>
  kind.core.call(
    'figma_get_design',
    { file: MARKETING_KEY, node_ids: [NODE] },
    { signal: new AbortController().signal },
  ),
);

const concurrent = [];
for (let i = 0; i < 10; i++) {
  clear();
  const t0 = performance.now();
  await Promise.all(
    ['2:1', '1:1', '1:900'].map((id) =>
      client.callTool({ name: 'figma_get_design', arguments: { file: MARKETING_KEY, node_ids: [id] } }),
    ),
  );
  concurrent.push(performance.now() - t0);
}
const conc = stats(concurrent);

const f = (n) => n.toFixed(2).padStart(8);
console.log(
  `figma-mcp bench: largest fixture node ${NODE} (${(nodesBytes / 1024).toFixed(0)} KiB of nodes JSON), N=${N}, times in ms`,
);
console.log('| case                                              |      p50 |      p95 |     mean |');
console.log('|---------------------------------------------------|----------|----------|----------|');
const row = (name, s) => console.log(`| ${name.padEnd(49)} | ${f(s.p50)} | ${f(s.p95)} | ${f(s.mean)} |`);
row('limit: bare fetch + JSON.parse from the fake', limit);
row('MCP get_design, uncached (nodes + simplify)', uncached);
row('MCP get_design, cached', cached);
row('core get_design, cached (no MCP/HTTP)', coreCached);
row('MCP floor: list_projects, cached (tiny answer)', small);
row('3 concurrent MCP get_design, uncached (wall)', conc);
console.log(
  `uncached overhead over the limit: p50 ${(uncached.p50 - limit.p50).toFixed(2)} ms (aim <= 20); cached p50 ${cached.p50.toFixed(2)} ms (aim <= 2)`,
);

await client.close();
await app.close();
await fake.close();
