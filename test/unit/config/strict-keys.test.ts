import { describe, expect, it } from 'vitest';
import { checkFleetEnv, knownFleetEnv, loadConfig, parseConfig } from '../../../src/config/load.js';
import { closest, editDistance } from '../../../src/config/strict-keys.js';

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toMatchObject({ code: 'config_invalid' });
    return (err as Error).message;
  }
  throw new Error('expected a config_invalid error');
}

describe('unknown keys in the configuration', () => {
  it('names the key and suggests the closest one, at every level', () => {
    expect(configError(() => parseConfig({ manager: { prot: 4500 } }))).toMatch(
      /manager: unknown key "prot" \(did you mean "port"\?\)/,
    );
    expect(configError(() => parseConfig({ python_sandbox: { max_concurent_tasks: 3 } }))).toMatch(
      /python_sandbox: unknown key "max_concurent_tasks" \(did you mean "max_concurrent_tasks"\?\)/,
    );
    expect(configError(() => parseConfig({ manager: { redis: { prefx: 'x' } } }))).toMatch(
      /manager\.redis: unknown key "prefx" \(did you mean "prefix"\?\)/,
    );
    expect(configError(() => parseConfig({ echo: { autoscale: { enabeld: true } } }))).toMatch(
      /echo\.autoscale: unknown key "enabeld" \(did you mean "enabled"\?\)/,
    );
    expect(configError(() => parseConfig({ pyhton_sandbox: {} }))).toMatch(
      /unknown key "pyhton_sandbox" \(did you mean "python_sandbox"\?\)/,
    );
  });

  it("checks the kinds' own sub-sections too", () => {
    expect(configError(() => parseConfig({ python_sandbox: { sandbox: { memroy_mb: 256 } } }))).toMatch(
      /python_sandbox\.sandbox: unknown key "memroy_mb" \(did you mean "memory_mb"\?\)/,
    );
    expect(
      configError(() => parseConfig({ browser_worker: { browser_config: { url_policy: { alow: [] } } } })),
    ).toMatch(/browser_worker\.browser_config\.url_policy: unknown key "alow"/);
    expect(configError(() => parseConfig({ figma_mcp: { figma_config: { api_tokn: 'x' } } }))).toMatch(
      /figma_mcp\.figma_config: unknown key "api_tokn" \(did you mean "api_token"\?\)/,
    );
    // A sub-section key belongs to its own kind only.
    expect(configError(() => parseConfig({ echo: { sandbox: {} } }))).toMatch(/echo: unknown key "sandbox"/);
  });

  it('accepts every valid key and keeps the sub-sections for the kinds', () => {
    const c = parseConfig({
      manager: { port: 4500, redis: { prefix: 'x' }, supervisor: { max_crashes: 2 } },
      python_sandbox: { max_concurrent_tasks: 3, sandbox: { memory_mb: 256 } },
      browser_worker: { browser_config: { pool_size: 1 } },
    });
    expect(c.manager.port).toBe(4500);
    expect(c.python_sandbox.sandbox).toEqual({ memory_mb: 256 });
    expect(c.browser_worker.browser_config).toEqual({ pool_size: 1 });
  });

  it('gives no suggestion when nothing is close', () => {
    const m = configError(() => parseConfig({ manager: { zzzzzzzz: 1 } }));
    expect(m).toMatch(/manager: unknown key "zzzzzzzz"/);
    expect(m).not.toMatch(/did you mean/);
  });

  it('measures typos as edits', () => {
    expect(editDistance('prot', 'port')).toBe(1);
    expect(editDistance('max_concurent_tasks', 'max_concurrent_tasks')).toBe(1);
    expect(closest('PORT', ['host', 'port'])).toBe('port');
    expect(closest('x', ['port'])).toBeUndefined();
  });
});

describe('unknown FLEET_* environment variables', () => {
  it('knows every variable applyEnv reads and the CLI ones', () => {
    const known = knownFleetEnv();
    for (const n of ['FLEET_PORT', 'FLEET_HOST', 'FLEET_REDIS_URL', 'FLEET_URL', 'FLEET_CONFIG'])
      expect(known).toContain(n);
  });

  it('names a misspelt one with a suggestion; others pass', () => {
    expect(configError(() => checkFleetEnv({ FLEET_PROT: '4500' }))).toMatch(
      /unknown environment variable FLEET_PROT \(did you mean FLEET_PORT\?\)/,
    );
    expect(configError(() => loadConfig({ file: '/dev/null', env: { FLEET_LOG_LEVL: 'info' } }))).toMatch(
      /FLEET_LOG_LEVL \(did you mean FLEET_LOG_LEVEL\?\)/,
    );
    expect(() =>
      checkFleetEnv({ FLEET_PORT: '1', FLEETING: 'x', WORKER_X: '1', PATH: '/bin' }),
    ).not.toThrow();
  });
});
