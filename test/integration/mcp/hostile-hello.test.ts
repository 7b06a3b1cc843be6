/**
 * A worker's hello carrying hostile capability schemas (issue 18): the manager stays up, refuses those
 * capabilities with a typed error frame and an alert, routes the worker only what it could accept, and keeps
 * checking payloads of the good ones.
 */
import { WebSocketServer, type WebSocket } from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION } from '../../../src/protocol/messages.js';
import { startManager, type TestManager } from '../../helpers/manager.js';
import { waitFor } from '../../helpers/processes.js';

/** `describes` is raw JSON text: a schema nested too deep for JSON.stringify must still reach the manager. */
async function hostileWorker(describes: string, capabilities: string[]) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const received: { type: string; error?: { code: string; message: string } }[] = [];
  wss.on('connection', (ws: WebSocket) => {
    const hello = JSON.stringify({
      type: 'hello',
      protocolVersion: PROTOCOL_VERSION,
      workerId: 'hostile-1',
      workerType: 'hostile',
      capabilities,
      maxConcurrency: 1,
      version: '0',
    });
    ws.send(`${hello.slice(0, -1)},"describes":${describes}}`);
    ws.on('message', (raw: Buffer) => received.push(JSON.parse(raw.toString()) as (typeof received)[number]));
  });
  return {
    endpoint: `ws://127.0.0.1:${(wss.address() as { port: number }).port}/ws`,
    received,
    close: () =>
      new Promise<void>((r) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => r());
      }),
  };
}

describe('hostile capability schemas in a hello', () => {
  let m: TestManager | undefined;
  let close: (() => Promise<void>) | undefined;
  afterEach(async () => {
    await close?.();
    await m?.stop();
    m = undefined;
  });

  it('refuses them (typed error frame, alert), routes only the rest, and the manager keeps serving', async () => {
    m = await startManager();
    const levels = 20_000;
    const deep = `${'{"items":'.repeat(levels)}{"type":"string"}${'}'.repeat(levels)}`;
    const rest = JSON.stringify([
      {
        capability: 'redos',
        description: 'r',
        payloadSchema: { type: 'string', pattern: '^(\\w+\\s?)*$' },
      },
      { capability: 'broken', description: 'b', payloadSchema: { type: 'object', required: 'yes' } },
      {
        capability: 'fine',
        description: 'f',
        payloadSchema: { type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] },
      },
    ]);
    const w = await hostileWorker(
      `[{"capability":"deep","description":"d","payloadSchema":${deep}},${rest.slice(1)}`,
      ['deep', 'redos', 'broken', 'fine'],
    );
    close = w.close;
    await m.manager.registerWorker({ endpoint: w.endpoint });
    await waitFor(() => m!.manager.worker('hostile-1') !== undefined, 10_000, 'hostile worker registered');
    expect(m.manager.worker('hostile-1')!.capabilities).toEqual(['fine']);
    await waitFor(
      () => w.received.filter((f) => f.type === 'error').length === 3,
      5000,
      'three error frames',
    );
    expect(
      w.received.filter((f) => f.type === 'error').every((f) => f.error?.code === 'capability_refused'),
    ).toBe(true);
    const alerts = m.manager.operatorEvents.activeAlerts() as { kind: string }[];
    expect(alerts.filter((a) => a.kind === 'capability_refused')).toHaveLength(3);
    // Refused capabilities are not offered; the accepted one is checked at submit.
    await expect(m.client.submit('redos', 'aaaa')).rejects.toMatchObject({ code: 'unknown_capability' });
    await expect(m.client.submit('fine', { n: 'x' })).rejects.toMatchObject({ code: 'invalid_payload' });
    const caps = (await (await fetch(`${m.url}/api/capabilities`)).json()) as {
      capabilities: { capability: string }[];
    };
    expect(caps.capabilities.map((c) => c.capability)).toContain('fine');
    expect(caps.capabilities.map((c) => c.capability)).not.toContain('redos');
    expect((await fetch(`${m.url}/health`)).status).toBe(200);
  });
});
