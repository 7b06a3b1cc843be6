import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpRequester } from '../../../src/client/http-request.js';

const servers: Server[] = [];
const sockets: Socket[] = [];
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.destroy();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

/**
 * A raw HTTP/1.1 server that answers `ok` with keep-alive and resets a connection on its request number
 * `resetOn` (counted per connection), the way a server's idle timeout closes a socket the client reuses.
 */
async function server(resetOn: number): Promise<{ url: string; connections: () => number }> {
  let connections = 0;
  const s = createServer((socket: Socket) => {
    sockets.push(socket);
    connections++;
    let requests = 0;
    socket.on('data', (chunk) => {
      if (!chunk.toString('latin1').includes('\r\n\r\n')) return;
      requests++;
      if (requests === resetOn) {
        socket.resetAndDestroy();
        return;
      }
      socket.write(
        'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok',
      );
    });
    socket.on('error', () => undefined);
  });
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/`, connections: () => connections };
}

describe('HttpRequester', () => {
  it('keeps the connection alive between requests', async () => {
    const srv = await server(0);
    const http = new HttpRequester(srv.url);
    for (let i = 0; i < 3; i++) {
      const r = await http.request('/', 'GET', {}, undefined, 5_000);
      expect(r.body.toString()).toBe('ok');
    }
    expect(srv.connections()).toBe(1);
    http.close();
  });

  it('sends a request again on a fresh connection when a reused one was reset under it', async () => {
    const srv = await server(2);
    const http = new HttpRequester(srv.url);
    await http.request('/', 'GET', {}, undefined, 5_000);
    const r = await http.request('/', 'POST', {}, '{}', 5_000);
    expect(r.status).toBe(200);
    expect(srv.connections()).toBe(2);
    http.close();
  });

  it('does not send again when a fresh connection is reset: that is the server failing', async () => {
    const srv = await server(1);
    const http = new HttpRequester(srv.url);
    await expect(http.request('/', 'POST', {}, '{}', 5_000)).rejects.toMatchObject({
      code: 'ECONNRESET',
    });
    expect(srv.connections()).toBe(1);
    http.close();
  });

  it('gives up after its timeout', async () => {
    const s = createServer((socket) => void sockets.push(socket));
    servers.push(s);
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(s.address() as { port: number }).port}/`;
    const http = new HttpRequester(url);
    await expect(http.request('/', 'GET', {}, undefined, 100)).rejects.toThrow(/no answer within 100 ms/);
    http.close();
  });
});
