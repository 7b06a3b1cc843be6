import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WORKER_DEFAULTS, workerSection } from '../../../../src/config/schema.js';
import { Announcer } from '../../../../src/workers/common/announce.js';
import { createLogger } from '../../../../src/workers/common/logger.js';
import { WorkerServer } from '../../../../src/workers/common/server.js';
import { createEchoKind } from '../../../../src/workers/echo/index.js';

const silent = pino({ level: 'silent' });
const body = () => ({ endpoint: 'ws://127.0.0.1:1/ws', workerType: 'echo', workerId: 'w' });

describe('Announcer', () => {
  it.each(['not a url', 'ftp://127.0.0.1/', 'ws://127.0.0.1:3000'])(
    'refuses manager URL %s with config_invalid',
    (managerUrl) => {
      expect(() => new Announcer({ managerUrl, logger: silent, body })).toThrow(
        expect.objectContaining({ code: 'config_invalid' }),
      );
    },
  );

  it('a WorkerServer with a bad manager URL fails in the constructor, before listening', () => {
    const config = workerSection(WORKER_DEFAULTS.echo).parse({ port: 0 });
    expect(
      () => new WorkerServer({ kind: createEchoKind(config), config, managerUrl: 'nope', logger: silent }),
    ).toThrow(expect.objectContaining({ code: 'config_invalid' }));
  });

  it('reports a failed announcement as false, never a throw', async () => {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    const a = new Announcer({
      managerUrl: 'http://127.0.0.1:9',
      logger: silent,
      body,
      requestTimeoutMs: 2_000,
    });
    await expect(a.announce()).resolves.toBe(false);
    a.stop();
  });
});

describe('createLogger', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('takes its level from the argument, then FLEET_LOG_LEVEL, then info', () => {
    vi.stubEnv('FLEET_LOG_LEVEL', 'DEBUG');
    expect(createLogger('x').level).toBe('debug');
    expect(createLogger('x', 'warn').level).toBe('warn');
    vi.stubEnv('FLEET_LOG_LEVEL', 'loud');
    expect(createLogger('x').level).toBe('info');
  });
});
