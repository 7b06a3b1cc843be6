// Where the time of one or more V8 CPU profiles (`node --cpu-prof`) went: the functions with the most self
// time and the most total time (a function counted once per sample however deep it recurses), summed over
// the files given, idle left out. `node bench/lib/profile-summary.mjs <file.cpuprofile>... [--top N]`.
import { readFileSync } from 'node:fs';

const args = process.argv.slice(2);
const topAt = args.indexOf('--top');
const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 30;
const self = new Map();
const total = new Map();
let busy = 0;

const nameOf = (node) => {
  const f = node.callFrame;
  const where = f.url.replace(/.*node_modules\//, '').replace(/.*\/dist\//, 'dist/');
  return `${f.functionName || '(anonymous)'} ${where}:${f.lineNumber + 1}`;
};

for (const file of args) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const spent = new Map();
  profile.samples.forEach((id, i) => spent.set(id, (spent.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  for (const [id, us] of spent) {
    const node = byId.get(id);
    if (node.callFrame.functionName === '(idle)') continue;
    busy += us;
    const name = nameOf(node);
    self.set(name, (self.get(name) ?? 0) + us);
    const seen = new Set();
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const n = nameOf(byId.get(at));
      if (seen.has(n)) continue;
      seen.add(n);
      total.set(n, (total.get(n) ?? 0) + us);
    }
  }
}

const rows = (map) =>
  [...map]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(
      ([name, us]) =>
        `${(us / 1000).toFixed(0).padStart(7)} ms ${((100 * us) / busy).toFixed(1).padStart(5)} %  ${name}`,
    )
    .join('\n');
console.log(
  `${args.length} profile(s), ${(busy / 1000).toFixed(0)} ms not idle\n\nself time\n${rows(self)}\n\ntotal time\n${rows(total)}`,
);
