import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { CLOSE_CODES } from '../../../../src/protocol/transport.js';
import { createEchoKind } from '../../../../src/workers/echo/index.js';
import {
  connectFakeManager,
  startWorker,
  workerConfig,
  type StartedWorker,
} from '../../../helpers/fake-manager.js';

const MAX_FRAME = 64 * 1024;

describe('bad input at the socket edge gets a typed error; the connection and other tasks carry on', () => {
  let worker: StartedWorker;
  beforeAll(async () => {
    worker = await startWorker(
      createEchoKind(workerConfig('echo')),
      {},
      {
        maxFrameBytes: MAX_FRAME,
        maxInboundFrameBytes: MAX_FRAME,
      },
    );
  });
  afterAll(async () => {
    await worker.stop();
  });

  it('malformed JSON, unknown types, schema failures and oversized frames are each answered, mid-task', async () => {
    const fm = await connectFakeManager(worker.endpoint);
    const running = fm.assign('sleep', { ms: 300 });

    fm.sendRaw('{"type": "task.assign", nope');
    expect(await fm.nextError()).toMatchObject({
      type: 'error',
      error: { code: 'bad_frame', retryable: false },
    });

    fm.sendRaw('[1,2,3]');
    expect(await fm.nextError()).toMatchObject({ error: { code: 'bad_frame' } });

    fm.sendRaw(JSON.stringify({ type: 'task.teleport', taskId: 'x' }));
    expect(await fm.nextError()).toMatchObject({
      error: { code: 'unknown_message' },
      inReplyTo: 'task.teleport',
    });

    fm.sendRaw(JSON.stringify({ type: 'task.assign', taskId: 'x', attempt: 0 }));
    const invalid = await fm.nextError();
    expect(invalid).toMatchObject({ error: { code: 'invalid_message' }, inReplyTo: 'task.assign' });
    expect(invalid.error.message).toMatch(/attempt|leaseToken|capability/);

    fm.sendRaw(JSON.stringify({ no: 'type' }));
    expect(await fm.nextError()).toMatchObject({ error: { code: 'invalid_message' } });

    fm.sendRaw(JSON.stringify({ type: 'task.assign', padding: 'z'.repeat(MAX_FRAME + 10) }));
    const tooLarge = await fm.nextError();
    expect(tooLarge).toMatchObject({ error: { code: 'frame_too_large', details: { limit: MAX_FRAME } } });

    fm.sendRaw(Buffer.from([0xff, 0xfe, 0x00, 0x7b]));
    expect(await fm.nextError()).toMatchObject({ error: { code: 'bad_frame' } });

    // Invalid UTF-8 in a *text* frame: ws would close with 1007; we answer it like any other bad frame.
    fm.socket.send(Buffer.from([0x7b, 0xc3, 0x28, 0x7d]), { binary: false });
    expect(await fm.nextError()).toMatchObject({ error: { code: 'bad_frame' } });

    // The task that was running the whole time completes, and the connection still takes work.
    expect(await running).toMatchObject({ type: 'task.result' });
    expect(await fm.assign('echo', { still: 'here' })).toMatchObject({
      type: 'task.result',
      output: { still: 'here' },
    });
    expect(fm.socket.readyState).toBe(WebSocket.OPEN);
    expect(fm.violations).toEqual([]);

    const metrics = await (await fetch(`${worker.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/fleet_worker_frames_rejected_total\{code="bad_frame"[^}]*\} 4/);
    expect(metrics).toMatch(/fleet_worker_frames_rejected_total\{code="frame_too_large"[^}]*\} 1/);
    expect(metrics).toMatch(/fleet_worker_frames_rejected_total\{code="unknown_message"[^}]*\} 1/);
    await fm.close();
  });

  it('a task.assign before welcome is refused with a typed, retryable error', async () => {
    const fm = await connectFakeManager(worker.endpoint, { welcome: false });
    const answer = await fm.assign('echo', {});
    expect(answer).toMatchObject({ type: 'task.error', error: { code: 'conflict', retryable: true } });
    expect(answer.type === 'task.error' && answer.error.message).toMatch(/before welcome/);
    await fm.close();
  });

  it('a different protocol version is refused with protocol_mismatch naming both versions, then closed 4400', async () => {
    const attempt = connectFakeManager(worker.endpoint, { protocolVersion: 2 });
    await expect(attempt).rejects.toMatchObject({
      code: 'protocol_mismatch',
      details: { managerVersion: 2, workerVersion: 1, closeCode: CLOSE_CODES.protocolMismatch },
    });
    await expect(attempt).rejects.toThrow(/version 2.*version 1/);
  });

  it('an unknown path is a plain 404, not a WebSocket', async () => {
    const ws = new WebSocket(worker.endpoint.replace('/ws', '/nope'));
    const error = await new Promise<Error>((resolve) => ws.on('error', resolve));
    expect(error.message).toMatch(/404/);
  });
});

describe('token auth', () => {
  let worker: StartedWorker;
  beforeAll(async () => {
    worker = await startWorker(createEchoKind(workerConfig('echo')), {}, { token: 's3cret-token' });
  });
  afterAll(async () => {
    await worker.stop();
  });

  it('accepts the token as a Bearer header or as ?token=', async () => {
    const viaHeader = await connectFakeManager(worker.endpoint, { token: 's3cret-token' });
    expect(await viaHeader.assign('echo', { a: 1 })).toMatchObject({ type: 'task.result' });
    await viaHeader.close();
    const viaQuery = await connectFakeManager(worker.endpoint, { token: 's3cret-token', tokenInQuery: true });
    expect(await viaQuery.assign('echo', { a: 2 })).toMatchObject({ type: 'task.result' });
    await viaQuery.close();
  });

  it.each([
    ['a wrong token', { token: 'guess' }],
    ['a wrong query token', { token: 's3cret-tokenX', tokenInQuery: true }],
    ['no token', {}],
  ])('%s gets a typed unauthorized error and a 4401 close, never a hello', async (_name, options) => {
    await expect(connectFakeManager(worker.endpoint, options)).rejects.toMatchObject({
      code: 'unauthorized',
      details: { closeCode: CLOSE_CODES.unauthorized },
    });
  });

  it('health stays open without a token (probes carry none)', async () => {
    const res = await fetch(`${worker.baseUrl}/health`);
    expect(res.status).toBe(200);
  });
});
