import { afterEach, describe, expect, it } from 'vitest';
import { createEchoKind } from '../../../../src/workers/echo/index.js';
import {
  connectFakeManager,
  startWorker,
  workerConfig,
  type StartedWorker,
} from '../../../helpers/fake-manager.js';

describe('echo worker over a real WebSocket', () => {
  let worker: StartedWorker | undefined;
  afterEach(async () => {
    await worker?.stop();
    worker = undefined;
  });

  it('says hello with its type, capabilities and concurrency, and answers echo', async () => {
    worker = await startWorker(createEchoKind(workerConfig('echo')));
    const fm = await connectFakeManager(worker.endpoint);
    expect(fm.hello).toMatchObject({
      type: 'hello',
      protocolVersion: 1,
      workerType: 'echo',
      capabilities: ['echo', 'sleep', 'fail', 'crash'],
      maxConcurrency: 8,
      workerId: worker.server.workerId,
    });
    const answer = await fm.assign('echo', { hello: 'world', n: [1, 2] });
    expect(answer).toMatchObject({ type: 'task.result', output: { hello: 'world', n: [1, 2] } });
    expect(fm.violations).toEqual([]);
    await fm.close();
  });
});
