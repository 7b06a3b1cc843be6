import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEchoKind } from '../../../../src/workers/echo/index.js';
import {
  connectFakeManager,
  startWorker,
  workerConfig,
  type FakeManager,
  type StartedWorker,
} from '../../../helpers/fake-manager.js';

describe('echo kind through the real runtime', () => {
  let worker: StartedWorker;
  let fm: FakeManager;
  beforeAll(async () => {
    worker = await startWorker(createEchoKind(workerConfig('echo')));
    fm = await connectFakeManager(worker.endpoint);
  });
  afterAll(async () => {
    await fm.close();
    await worker.stop();
  });

  it('says hello with its id, type, capabilities, concurrency and version', () => {
    expect(fm.hello).toMatchObject({
      type: 'hello',
      protocolVersion: 1,
      workerId: worker.server.workerId,
      workerType: 'echo',
      capabilities: ['echo', 'sleep', 'fail', 'crash'],
      maxConcurrency: 8,
      version: '0.1.0',
      inFlight: [],
    });
    expect(worker.endpoint).toMatch(/^ws:\/\/127\.0\.0\.1:\d+\/ws$/);
  });

  it('echo returns the payload', async () => {
    const answer = await fm.assign('echo', { hello: 'world', n: [1, 2, { deep: null }] });
    expect(answer).toMatchObject({
      type: 'task.result',
      attempt: 1,
      output: { hello: 'world', n: [1, 2, { deep: null }] },
    });
    expect(answer.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('echo returns a binary artifact intact, base64 on the wire with its content type and size', async () => {
    const bytes = Buffer.from([0, 1, 2, 255, 254, 0x89, 0x50, 0x4e, 0x47]);
    const answer = await fm.assign('echo', {
      note: 'png-ish',
      artifact: { name: 'shot.png', contentType: 'image/png', base64: bytes.toString('base64') },
    });
    if (answer.type !== 'task.result') throw new Error(`expected a result, got ${JSON.stringify(answer)}`);
    expect(answer.output).toEqual({
      note: 'png-ish',
      artifact: { name: 'shot.png', contentType: 'image/png', size: bytes.length },
    });
    expect(answer.artifacts).toHaveLength(1);
    const [artifact] = answer.artifacts!;
    expect(artifact).toMatchObject({
      name: 'shot.png',
      contentType: 'image/png',
      size: bytes.length,
      encoding: 'base64',
    });
    expect(Buffer.from(artifact!.data, 'base64').equals(bytes)).toBe(true);
  });

  it('echo refuses an artifact that is not base64 with invalid_payload', async () => {
    const answer = await fm.assign('echo', { artifact: { name: 'a', base64: '***' } });
    expect(answer).toMatchObject({
      type: 'task.error',
      error: { code: 'invalid_payload', retryable: false },
    });
    expect(answer.type === 'task.error' && answer.error.message).toMatch(/artifact\.base64/);
  });

  it('sleep reports percent progress and returns', async () => {
    const { taskId, answer } = fm.dispatch('sleep', { ms: 600, progressEvery: 100 });
    const percents: number[] = [];
    fm.onProgress(taskId, (p) => p.percent !== undefined && percents.push(p.percent));
    const result = await answer;
    expect(result).toMatchObject({ type: 'task.result', output: { sleptMs: expect.any(Number) } });
    expect(
      result.type === 'task.result' && (result.output as { sleptMs: number }).sleptMs,
    ).toBeGreaterThanOrEqual(595);
    expect(percents.length).toBeGreaterThanOrEqual(2);
    expect(percents.at(-1)).toBe(100);
    expect([...percents].sort((a, b) => a - b)).toEqual(percents);
  });

  it('fail throws the requested FleetError with code, retryable and details', async () => {
    const answer = await fm.assign('fail', {
      code: 'browser_crashed',
      message: 'boom',
      details: { why: 'test' },
    });
    expect(answer).toMatchObject({
      type: 'task.error',
      error: { code: 'browser_crashed', message: 'boom', retryable: true, details: { why: 'test' } },
    });
    const overridden = await fm.assign('fail', { code: 'handler_error', retryable: true });
    expect(overridden).toMatchObject({
      type: 'task.error',
      error: { code: 'handler_error', retryable: true },
    });
  });

  it('fail with an unknown code is an invalid payload naming the field', async () => {
    const answer = await fm.assign('fail', { code: 'no_such_code' });
    expect(answer).toMatchObject({ type: 'task.error', error: { code: 'invalid_payload' } });
    expect(answer.type === 'task.error' && answer.error.message).toMatch(/at code/);
  });

  it('an invalid payload names the field path', async () => {
    const answer = await fm.assign('sleep', { ms: 'soon' });
    expect(answer).toMatchObject({
      type: 'task.error',
      error: { code: 'invalid_payload', retryable: false },
    });
    expect(answer.type === 'task.error' && answer.error.message).toMatch(/"sleep" at ms/);
  });

  it('an unknown capability is refused with unknown_capability', async () => {
    const answer = await fm.assign('python-execution', {});
    expect(answer).toMatchObject({
      type: 'task.error',
      error: { code: 'unknown_capability', retryable: false },
    });
  });

  it('only the configured capabilities are offered', async () => {
    const limited = await startWorker(createEchoKind(workerConfig('echo')), {
      capabilities: ['echo', 'sleep', 'teleport'],
    });
    try {
      const m = await connectFakeManager(limited.endpoint);
      expect(m.hello.capabilities).toEqual(['echo', 'sleep']);
      expect(await m.assign('crash', {})).toMatchObject({
        type: 'task.error',
        error: { code: 'unknown_capability' },
      });
      await m.close();
    } finally {
      await limited.stop();
    }
  });

  it('sent only valid protocol frames', () => {
    expect(fm.violations).toEqual([]);
  });
});
