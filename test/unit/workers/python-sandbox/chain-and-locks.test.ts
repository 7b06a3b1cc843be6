/** The pieces of the sandbox boundary that need no sandbox: the launch argv, uid blocks, sdist detection. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import {
  buildLaunch,
  RUNNER_FD,
  SECCOMP_FD,
  type ChainConfig,
} from '../../../../src/workers/python-sandbox/chain.js';
import {
  pipUpstreamTries,
  projectName,
  sdistOnly,
} from '../../../../src/workers/python-sandbox/handlers/package-install.js';
import { parseSandboxOptions, resolveLimits } from '../../../../src/workers/python-sandbox/options.js';
import { claimUidRange } from '../../../../src/workers/python-sandbox/uid-range.js';

const dirs: string[] = [];
const tmp = (prefix: string) => {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const chain: ChainConfig = {
  level: 'namespaces',
  python: '/usr/bin/python3',
  bwrap: '/usr/bin/bwrap',
  dropUid: true,
  cgroups: undefined,
  seccomp: Buffer.alloc(8),
  limits: resolveLimits(parseSandboxOptions({ workspace_mb: 8 })),
};
const spec = {
  uid: 200_001,
  workDir: '/ws/sbx-1/work',
  pkgDir: '/ws/sbx-1/pkgs',
  pkgDirWritable: false,
  runnerPath: '/tmp/fleet-py-1-x/runner.py',
  cgroupProcs: [],
  network: false,
  argv: ['{python}', '-I', '{runner}'],
};

describe('buildLaunch', () => {
  test('hostname, runner as data (no host path), seccomp fd, workspace bound', () => {
    const l = buildLaunch(chain, spec);
    const args = l.args.join(' ');
    expect(args).toContain('--hostname fleet-sandbox');
    expect(args).toContain(`--ro-bind-data ${RUNNER_FD} /opt/fleet/runner.py`);
    expect(args).not.toContain(spec.runnerPath);
    expect(args).toContain(`--bind ${spec.workDir} /workspace`);
    expect([...l.inputs.keys()].sort()).toEqual([SECCOMP_FD, RUNNER_FD]);
    expect(args).not.toContain('--share-net');
  });

  test('without a host mount the workspace is a size-limited tmpfs made by bwrap', () => {
    const args = buildLaunch(chain, { ...spec, workspaceTmpfsBytes: 8 * 1024 * 1024 }).args.join(' ');
    expect(args).toContain(`--size ${8 * 1024 * 1024} --tmpfs /workspace`);
    expect(args).not.toContain(spec.workDir);
  });

  test("pip's download step sees neither the workspace nor the packages", () => {
    const args = buildLaunch(chain, { ...spec, network: true, workspace: false }).args.join(' ');
    expect(args).toContain('--share-net');
    expect(args).not.toContain(spec.workDir);
    expect(args).not.toContain(spec.pkgDir);
  });
});

describe('uid blocks', () => {
  test('two claims get disjoint blocks; a released or dead holder frees its block; all taken is an error', () => {
    const lockDir = tmp('fleet-uidlock-');
    const opts = { base: 300_000, total: 200, perWorker: 100, lockDir };
    const a = claimUidRange(opts);
    const b = claimUidRange(opts);
    expect(a.first + a.count <= b.first || b.first + b.count <= a.first).toBe(true);
    expect(() => claimUidRange(opts)).toThrow(/taken by another worker/);
    a.release();
    const c = claimUidRange(opts);
    expect(c.first).toBe(a.first);
    c.release();
    // A lock left by a dead process is taken over.
    writeFileSync(c.lockFile, '2147483646 dead');
    expect(claimUidRange(opts).first).toBe(c.first);
    b.release();
  });
});

describe('sdist detection', () => {
  test('a project offered only as an sdist is found; one with a wheel is not', () => {
    const d = tmp('fleet-sdists-');
    writeFileSync(join(d, 'Evil_Pkg-0.1.tar.gz'), '');
    writeFileSync(join(d, 'good-1.0-py3-none-any.whl'), '');
    writeFileSync(join(d, 'both-1.0.tar.gz'), '');
    writeFileSync(join(d, 'both-1.0-py3-none-any.whl'), '');
    expect(projectName('Evil_Pkg[extra]>=0.1')).toBe('evil-pkg');
    expect(sdistOnly(d, ['evil.pkg==0.1', 'good', 'both', 'absent'])).toEqual(['evil-pkg']);
  });
});

describe('pipUpstreamTries', () => {
  test("counts one try plus each of pip's Retrying warnings", () => {
    expect(pipUpstreamTries('ERROR: No matching distribution found for x\n')).toBe(1);
    const warn = (n: number) =>
      `WARNING: Retrying (Retry(total=${n}, connect=None, read=None, redirect=None, status=None)) after connection broken by 'ProtocolError'\n`;
    expect(pipUpstreamTries(warn(1) + warn(0) + 'ERROR: Could not find a version\n')).toBe(3);
  });
});
