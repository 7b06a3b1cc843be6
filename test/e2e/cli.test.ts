/**
 * The operator's day with the real `fleet` binary: a `fleet up -c fleet.yaml` on free ports in a temporary
 * directory, and the client commands run beside it as a user runs them. Each describe block is one point of
 * the CLI's promises (README, docs/errors.md).
 */
import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cleanEnv, fleet, makeFleetDir } from '../helpers/cli.js';

describe('config typos are errors that name the key', () => {
  it('fleet up refuses an unknown manager key with a suggestion, exit 2, one line', async () => {
    const dir = await makeFleetDir('manager:\n  prot: 4500\n');
    try {
      const r = await fleet(['up', '--only', 'echo'], { cwd: dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        'fleet: config_invalid: invalid configuration: manager: unknown key "prot" (did you mean "port"?)\n',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a typo inside a worker section and inside its kind sub-section', async () => {
    const dir = await makeFleetDir(
      'python_sandbox:\n  max_concurent_tasks: 3\n  sandbox:\n    memroy_mb: 256\n',
    );
    try {
      const r = await fleet(['up', '--only', 'echo'], { cwd: dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(
        /python_sandbox: unknown key "max_concurent_tasks" \(did you mean "max_concurrent_tasks"\?\)/,
      );
      expect(r.stderr).toMatch(
        /python_sandbox\.sandbox: unknown key "memroy_mb" \(did you mean "memory_mb"\?\)/,
      );
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a FLEET_* variable Fleet does not read, for fleet up', async () => {
    const up = await fleet(['up', '--only', 'echo'], { env: cleanEnv({ FLEET_PROT: '4500' }) });
    expect(up.code).toBe(2);
    expect(up.stderr).toMatch(
      /^fleet: config_invalid: unknown environment variable FLEET_PROT \(did you mean FLEET_PORT\?\)/,
    );
  });
});
