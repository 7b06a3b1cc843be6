// Summarizes V8 .cpuprofile files (from `node --cpu-prof`, e.g. bench/manager.mjs or bench/mcp.mjs
// --cpu-prof DIR, BENCH_CPU_PROF=DIR for bench/distributed.mjs): where the milliseconds go, summed over the
// files given. Four top-N tables: self time by function, total (inclusive) time by function and by module,
// each counted once per sample however deep it recurses, and self time by module (these add up to the whole). Shares are of the time not idle; the profile
// samples wall time, so idle is printed apart.
// --skip-ms N leaves out each profile's first N ms, so a process's start-up (module loading, compiling)
// does not crowd out the steady state a bench measures.
// Usage: node bench/lib/profile-top.mjs <file.cpuprofile>... [--top N] [--skip-ms N] (a bare trailing
// number works too, as --top)
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const topAt = args.indexOf('--top');
let top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 25;
const skipAt = args.indexOf('--skip-ms');
const skipUs = skipAt >= 0 ? Number(args.splice(skipAt, 2)[1]) * 1000 : 0;
if (args.length > 1 && /^\d+$/.test(args.at(-1))) top = Number(args.pop());
if (args.length === 0 || !Number.isInteger(top) || top < 1 || !(skipUs >= 0)) {
  console.error('usage: node bench/lib/profile-top.mjs <file.cpuprofile>... [--top N] [--skip-ms N]');
  process.exit(2);
}

const short = (url) =>
  url
    .replace(/^file:\/\//, '')
    .replace(/.*\/node_modules\//, '')
    .replace(/.*\/dist\//, 'dist/');
const fnName = (cf) => `${cf.functionName || '(anonymous)'} ${short(cf.url)}:${cf.lineNumber + 1}`;
const moduleName = (cf) => {
  const u = short(cf.url);
  if (!u) return cf.functionName.startsWith('(') ? cf.functionName : '(native)';
  if (u.startsWith('dist/') || u.startsWith('node:')) return u;
  return u
    .split('/')
    .slice(0, u.startsWith('@') ? 2 : 1)
    .join('/');
};

const self = new Map();
const selfByModule = new Map();
const totalByFn = new Map();
const totalByModule = new Map();
let busy = 0;
let idle = 0;
const add = (map, k, us) => map.set(k, (map.get(k) ?? 0) + us);

for (const file of args) {
  const prof = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const spent = new Map();
  let at = 0;
  prof.samples.forEach((id, i) => {
    at += prof.timeDeltas[i] ?? 0;
    if (at >= skipUs) add(spent, id, prof.timeDeltas[i] ?? 0);
  });
  for (const [id, us] of spent) {
    const node = byId.get(id);
    if (node.callFrame.functionName === '(idle)') {
      idle += us;
      continue;
    }
    busy += us;
    add(self, fnName(node.callFrame), us);
    add(selfByModule, moduleName(node.callFrame), us);
    const seenFn = new Set();
    const seenModule = new Set();
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const cf = byId.get(at).callFrame;
      const f = fnName(cf);
      const m = moduleName(cf);
      if (!seenFn.has(f)) seenFn.add(f) && add(totalByFn, f, us);
      if (!seenModule.has(m)) seenModule.add(m) && add(totalByModule, m, us);
    }
  }
}

const rows = (map) =>
  [...map]
    .filter(([k]) => !k.startsWith('(root)'))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(
      ([k, us]) =>
        `${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / busy).toFixed(1).padStart(5)} %  ${k}`,
    )
    .join('\n');
console.log(
  `${args.length} profile(s): ${(busy / 1000).toFixed(0)} ms not idle, ${(idle / 1000).toFixed(0)} ms idle\n` +
    `\nself time by function\n${rows(self)}\n\ntotal time by function\n${rows(totalByFn)}` +
    `\n\ntotal time by module\n${rows(totalByModule)}\n\nself time by module\n${rows(selfByModule)}`,
);
