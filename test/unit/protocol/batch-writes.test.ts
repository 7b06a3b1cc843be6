/**
 * batchWritesThisTurn over a real WebSocket pair on loopback: the first frame of a turn is written at once,
 * the frames after it in the same turn go out together when the turn ends, and every frame arrives in order.
 */
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { batchWritesThisTurn } from '../../../src/protocol/batch-writes.js';

const turn = () => new Promise<void>((r) => setImmediate(r));

describe('batchWritesThisTurn', () => {
  let wss: WebSocketServer | undefined;
  afterEach(async () => {
    for (const c of wss?.clients ?? []) c.terminate();
    await new Promise<void>((r) => (wss ? wss.close(() => r()) : r()));
  });

  async function pair() {
    wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => wss!.once('listening', () => r()));
    const received: string[] = [];
    wss.on('connection', (ws) => ws.on('message', (d: Buffer) => received.push(d.toString('utf8'))));
    const ws = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
    await new Promise((r) => ws.once('open', r));
    // Count what reaches the kernel: each _writev/_write of the net.Socket is one syscall.
    type Write = (...args: unknown[]) => unknown;
    const socket = (ws as unknown as { _socket: { _writev: Write; _write: Write } })._socket;
    let writes = 0;
    for (const key of ['_writev', '_write'] as const) {
      const original = socket[key].bind(socket);
      socket[key] = (...args: unknown[]) => {
        writes++;
        return original(...args);
      };
    }
    return { ws, received, writes: () => writes };
  }

  const send = (ws: WebSocket, text: string) => {
    batchWritesThisTurn(ws);
    ws.send(text);
  };

  it('writes the first frame of a turn at once and the rest together when the turn ends', async () => {
    const { ws, received, writes } = await pair();
    send(ws, 'f0');
    expect(writes()).toBe(1);
    for (let i = 1; i < 6; i++) send(ws, `f${i}`);
    expect(writes()).toBe(1);
    await turn();
    await turn();
    expect(writes()).toBe(2);
    // A later turn starts again with a frame at once.
    send(ws, 'g0');
    expect(writes()).toBe(3);
    await turn();
    send(ws, 'h0');
    expect(writes()).toBe(4);
    await new Promise((r) => setTimeout(r, 50));
    expect(received).toEqual(['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'g0', 'h0']);
    ws.close();
  });
});
