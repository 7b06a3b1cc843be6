// Runs the benchmarks in order (or the ones named: `npm run bench -- manager browser`), each in its own process.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';

const all = readdirSync(new URL('.', import.meta.url)).filter((f) => f.endsWith('.mjs') && f !== 'run.mjs');
const wanted = process.argv.slice(2);
const chosen = wanted.length ? all.filter((f) => wanted.some((w) => f.startsWith(w))) : all;
let failed = 0;
for (const file of chosen) {
  console.log(`\n=== bench/${file} ===`);
  const r = spawnSync(process.execPath, ['--expose-gc', new URL(file, import.meta.url).pathname], {
    stdio: 'inherit',
  });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
