import { describe, expect, it } from 'vitest';
import { applyEnv, interpolate, parseConfig } from '../../../src/config/load.js';

describe('configuration', () => {
  it("defaults are the spec's values", () => {
    const c = parseConfig({});
    expect(c.python_sandbox).toMatchObject({ port: 3001, max_concurrent_tasks: 5, timeout: 300_000 });
    expect(c.figma_mcp).toMatchObject({
      port: 3002,
      max_concurrent_tasks: 3,
      timeout: 180_000,
      protocol: 'mcp',
    });
    expect(c.browser_worker).toMatchObject({ port: 3003, max_concurrent_tasks: 4, timeout: 120_000 });
    expect(c.browser_worker.capabilities).toContain('pdf-generation');
    expect(c.python_sandbox.health_check).toEqual({ endpoint: '/health', interval: 30_000, timeout: 5_000 });
    expect(c.manager).toMatchObject({ port: 3000, strategy: 'least-load', store: 'memory' });
    expect(c.manager.retries.max_attempts).toBe(3);
    expect(c.manager.health).toMatchObject({ interval: 30_000, timeout: 5_000 });
  });

  it('reads durations as seconds or with units', () => {
    const c = parseConfig({
      python_sandbox: { timeout: '5m', health_check: { interval: '500ms' } },
      echo: { timeout: 2 },
    });
    expect(c.python_sandbox.timeout).toBe(300_000);
    expect(c.python_sandbox.health_check.interval).toBe(500);
    expect(c.echo.timeout).toBe(2000);
  });

  it('names the field in errors', () => {
    expect(() => parseConfig({ python_sandbox: { port: 'x' } })).toThrow(/python_sandbox\.port/);
    expect(() => parseConfig({ manager: { strategy: 'random' } })).toThrow(/manager\.strategy/);
    expect(() => parseConfig({ browser_worker: { timeout: 'soon' } })).toThrow(
      /browser_worker\.timeout: "soon" is not a duration/,
    );
    expect(() => parseConfig({ nonsense: 1 })).toThrow(/unknown key "nonsense"/);
    try {
      parseConfig({ manager: { port: -1 } });
    } catch (err) {
      expect(err).toMatchObject({ code: 'config_invalid' });
    }
  });

  it("applies the spec's environment variables over the file", () => {
    const raw = applyEnv(
      { python_sandbox: { port: 4001 } },
      {
        WORKER_PYTHON_PORT: '5001',
        WORKER_BROWSER_PORT: '5003',
        WORKER_HEALTH_CHECK_INTERVAL: '10',
        WORKER_MAX_RETRIES: '5',
        BROWSER_POOL_SIZE: '2',
        BROWSER_AUTO_RESTART: 'false',
        FIGMA_API_TOKEN: 'tok',
        FIGMA_TEAM_ID: 'team',
        FLEET_PORT: '3100',
        FLEET_WORKERS: 'ws://127.0.0.1:1/ws, ws://127.0.0.1:2/ws',
      },
    );
    const c = parseConfig(raw);
    expect(c.python_sandbox.port).toBe(5001);
    expect(c.browser_worker.port).toBe(5003);
    expect(c.manager.health.interval).toBe(10_000);
    expect(c.echo.health_check.interval).toBe(10_000);
    expect(c.manager.retries.max_attempts).toBe(5);
    expect(c.browser_worker.browser_config).toEqual({ pool_size: 2, auto_restart: false });
    expect(c.figma_mcp.figma_config).toEqual({ api_token: 'tok', team_id: 'team' });
    expect(c.manager.port).toBe(3100);
    expect(c.manager.workers).toEqual(['ws://127.0.0.1:1/ws', 'ws://127.0.0.1:2/ws']);
    expect(() => applyEnv({}, { WORKER_PYTHON_PORT: 'abc' })).toThrow(/WORKER_PYTHON_PORT/);
  });

  it('interpolates ${VAR} in YAML strings; an empty result counts as unset', () => {
    expect(interpolate({ a: '${X}', b: 'pre-${X}', c: '${MISSING}' }, { X: 'v' })).toEqual({
      a: 'v',
      b: 'pre-v',
    });
  });
});
