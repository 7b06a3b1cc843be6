// Summarizes V8 .cpuprofile files (from `node --cpu-prof`, e.g. bench/manager.mjs --cpu-prof DIR) as a
// top-N table of self time by function, and of total (inclusive) time by module: where the milliseconds go.
// Usage: node bench/lib/profile-top.mjs <file.cpuprofile> [n=25]
import { readFileSync } from 'node:fs';

const [file, n = '25'] = process.argv.slice(2);
const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((node) => [node.id, node]));
const self = new Map(prof.nodes.map((node) => [node.id, 0]));
const deltas = prof.timeDeltas;
for (let i = 0; i < prof.samples.length; i++)
  self.set(prof.samples[i], self.get(prof.samples[i]) + (deltas[i] ?? 0));
const total = [...self.values()].reduce((a, b) => a + b, 0);
const short = (url) =>
  url
    .replace(/^file:\/\//, '')
    .replace(/.*\/node_modules\//, '')
    .replace(/.*\/dist\//, 'dist/')
    .replace(/^node:/, 'node:');
const key = (cf) => `${cf.functionName || '(anonymous)'} ${short(cf.url)}:${cf.lineNumber + 1}`;
const fnSelf = new Map();
for (const node of prof.nodes) {
  const k = key(node.callFrame);
  fnSelf.set(k, (fnSelf.get(k) ?? 0) + self.get(node.id));
}
const pct = (x) => `${((x / total) * 100).toFixed(1)} %`;
console.log(`${file}: ${(total / 1000).toFixed(0)} ms sampled`);
console.log('\nself time by function');
for (const [k, v] of [...fnSelf].sort((a, b) => b[1] - a[1]).slice(0, Number(n)))
  console.log(`${pct(v).padStart(7)}  ${k}`);
// Inclusive time per package / source module: a node counts once per module on its stack.
const parent = new Map();
for (const node of prof.nodes) for (const c of node.children ?? []) parent.set(c, node.id);
const mod = (cf) => {
  const u = short(cf.url);
  if (!u) return cf.functionName.startsWith('(') ? cf.functionName : '(native)';
  if (u.startsWith('dist/')) return u;
  if (u.startsWith('node:')) return u;
  return u
    .split('/')
    .slice(0, u.startsWith('@') ? 2 : 1)
    .join('/');
};
const incl = new Map();
for (const node of prof.nodes) {
  const t = self.get(node.id);
  if (!t) continue;
  const seen = new Set();
  for (let id = node.id; id !== undefined; id = parent.get(id)) {
    const m = mod(byId.get(id).callFrame);
    if (seen.has(m)) continue;
    seen.add(m);
    incl.set(m, (incl.get(m) ?? 0) + t);
  }
}
console.log('\ninclusive time by module');
for (const [k, v] of [...incl].sort((a, b) => b[1] - a[1]).slice(0, Number(n)))
  console.log(`${pct(v).padStart(7)}  ${k}`);
