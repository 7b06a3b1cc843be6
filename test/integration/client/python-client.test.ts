/**
 * Issue 18 point 4 (Python): `pip install ./clients/python` works offline with Debian's python3 (into a venv
 * that sees the system's setuptools: no index, no build isolation), and the client's own unittest suite, run
 * against the installed package, passes against a real manager and echo worker it starts from dist/. Any
 * Python failure, error or skip fails this test, so `./fleet test` (and CI) runs the Python suite.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI, requireBuild } from '../../helpers/processes.js';

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const PYTHON = '/usr/bin/python3';

describe('the Python client (issue 18 point 4)', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it(
    'installs offline with pip and passes its suite against a real manager',
    { timeout: 240_000 },
    async () => {
      requireBuild();
      expect(existsSync(PYTHON), `${PYTHON} (Debian's python3) is required`).toBe(true);
      const dir = mkdtempSync(join(tmpdir(), 'fleet-py-client-'));
      dirs.push(dir);
      // pip builds in the source tree (build/, *.egg-info): build a copy, never the checkout.
      const source = join(dir, 'src');
      cpSync(join(ROOT, 'clients/python'), source, {
        recursive: true,
        filter: (p) => !/(__pycache__|\.egg-info|\/build)$/.test(p),
      });
      const venv = join(dir, 'venv');
      await run(PYTHON, ['-m', 'venv', '--system-site-packages', '--without-pip', venv]);
      const python = join(venv, 'bin/python');
      const install = await run(
        python,
        [
          '-m',
          'pip',
          'install',
          '--no-index',
          '--no-build-isolation',
          '--disable-pip-version-check',
          '--no-input',
          source,
        ],
        { env: { ...process.env, PIP_NO_INDEX: '1' } },
      );
      expect(install.stdout).toMatch(/Successfully installed fleet-client-0\.1\.0/);

      // The suite from the checkout, the package from the venv (the test that checks this runs only here).
      const suite = await run(
        python,
        [
          '-W',
          'error::ResourceWarning',
          '-m',
          'unittest',
          'discover',
          '-v',
          '-s',
          join(ROOT, 'clients/python/tests'),
        ],
        {
          cwd: dir,
          env: {
            ...process.env,
            FLEETPY_CLI: CLI,
            FLEETPY_NODE: process.execPath,
            FLEETPY_REQUIRE_INSTALLED: '1',
          },
          maxBuffer: 16 * 1024 * 1024,
        },
      ).catch((err: { stdout?: string; stderr?: string; code?: number }) => {
        throw new Error(
          `the Python suite failed (exit ${err.code}):\n${err.stderr ?? ''}${err.stdout ?? ''}`,
        );
      });
      const report = suite.stderr;
      const ran = /^Ran (\d+) tests? in/m.exec(report);
      expect(ran, report).not.toBeNull();
      expect(Number(ran![1])).toBeGreaterThanOrEqual(22);
      expect(report).toMatch(/^OK$/m);
      expect(report).not.toMatch(/skipped/);
    },
  );
});
