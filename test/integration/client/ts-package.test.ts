/**
 * Issue 18 point 4 (TypeScript): the package as another project gets it. `npm pack` makes the tarball, a
 * temporary project installs it, type-checks code that imports `fleet/client` with tsc, and runs it against a
 * real manager with an echo worker.
 *
 * The install is offline (`npm ci --offline`): the temporary project's lock file is fleet's own, less the dev
 * packages, plus the tarball, so every package comes from the npm cache that installing fleet filled. That
 * works on a fresh CI machine after `npm install`, with no registry.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { startManager, type TestManager } from '../../helpers/manager.js';
import { requireBuild, spawnWorker, type WorkerProcess } from '../../helpers/processes.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TSC = join(ROOT, 'node_modules/typescript/bin/tsc');

interface LockEntry {
  dev?: boolean;
  [k: string]: unknown;
}

/** package.json and package-lock.json of a project that depends on the tarball alone. */
function consumerProject(dir: string, tarball: string, integrity: string): void {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as Record<string, unknown>;
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, LockEntry>;
  };
  const spec = `file:${tarball}`;
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', dependencies: { fleet: spec } },
    'node_modules/fleet': {
      version: pkg.version,
      resolved: spec,
      integrity,
      dependencies: pkg.dependencies,
      bin: pkg.bin,
      engines: pkg.engines,
    },
  };
  // fleet's dependencies sit at the top of its node_modules, where they sit in the consumer's too.
  for (const [path, entry] of Object.entries(lock.packages)) {
    if (path.startsWith('node_modules/') && !entry.dev) packages[path] = entry;
  }
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'consumer', private: true, type: 'module', dependencies: { fleet: spec } }),
  );
  writeFileSync(
    join(dir, 'package-lock.json'),
    JSON.stringify({ name: 'consumer', lockfileVersion: 3, requires: true, packages }),
  );
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        outDir: 'out',
        // The client's declarations use Buffer; the consumer brings Node's types, here fleet's own copy.
        typeRoots: [join(ROOT, 'node_modules/@types')],
        types: ['node'],
      },
      files: ['main.ts'],
    }),
  );
}

/** Code another project writes. The @ts-expect-error lines fail the build if the types were missing or `any`. */
const CONSUMER = `
import { FleetClient, FleetError, type ClientTask } from 'fleet/client';

const client = new FleetClient({ url: process.argv[2] ?? '' });
// @ts-expect-error: a capability is a string
void client.submit(42, {}).catch(() => undefined);
// @ts-expect-error: no such method
void client.executeTask;
const task: ClientTask = await client.execute('echo', { from: 'a packed install' }, { waitMs: 20_000 });
let code: string | undefined;
try {
  await client.submit('echo', {}, { priority: 5000 });
} catch (err) {
  if (err instanceof FleetError) code = err.code;
}
let payload: { code: string; path: unknown } | undefined;
try {
  await client.submit('sleep', { ms: 'slow' });
} catch (err) {
  if (err instanceof FleetError) payload = { code: err.code, path: err.details?.['path'] };
}
console.log(JSON.stringify({ state: task.state, output: task.output, code, payload }));
`;

describe('the TypeScript client as a package (issue 18 point 4)', () => {
  let m: TestManager | undefined;
  let worker: WorkerProcess | undefined;
  const dirs: string[] = [];
  afterAll(async () => {
    worker?.kill('SIGKILL');
    await m?.stop();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('npm pack → install offline → tsc → a call against a real manager', { timeout: 240_000 }, async () => {
    requireBuild();
    const dir = mkdtempSync(join(tmpdir(), 'fleet-client-pkg-'));
    dirs.push(dir);
    const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
      cwd: ROOT,
      maxBuffer: 64 * 1024 * 1024,
    });
    const [info] = JSON.parse(packed.stdout) as {
      filename: string;
      integrity: string;
      files: { path: string }[];
    }[];
    const files = info!.files.map((f) => f.path);
    expect(files).toContain('dist/client/index.d.ts');
    expect(files).toContain('dist/client/index.js');
    // A package, not a checkout: no sources, tests or maps.
    expect(files.filter((f) => /^(src\/.*\.ts|test\/)|\.map$/.test(f))).toEqual([]);

    const project = join(dir, 'consumer');
    await run('mkdir', [project]);
    consumerProject(project, join(dir, info!.filename), info!.integrity);
    writeFileSync(join(project, 'main.ts'), CONSUMER);
    await run('npm', ['ci', '--offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: project,
      maxBuffer: 64 * 1024 * 1024,
    });
    await run(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: project });

    // Deep imports stay private: only `fleet/client` is exported.
    const deep = await run(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        "import('fleet/dist/manager/manager.js').catch((e) => console.log(e.code))",
      ],
      { cwd: project },
    );
    expect(deep.stdout.trim()).toBe('ERR_PACKAGE_PATH_NOT_EXPORTED');

    m = await startManager({ workers: [] });
    worker = await spawnWorker('echo');
    await m.manager.registerWorker({ endpoint: worker.endpoint });
    const out = await run(process.execPath, [join(project, 'out/main.js'), m.url], { cwd: project });
    expect(JSON.parse(out.stdout)).toEqual({
      state: 'succeeded',
      output: { from: 'a packed install' },
      code: 'invalid_task',
      // Refused at submit against the schema the echo worker describes for sleep, with the JSON path.
      payload: { code: 'invalid_payload', path: 'ms' },
    });
  });
});
