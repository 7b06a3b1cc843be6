import { getEventListeners } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isolatedAbortFetch } from '../../../src/cli/isolated-abort-fetch.js';

describe('isolatedAbortFetch (the stdio bridge fetch)', () => {
  let server: Server;
  let url = '';
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/json')
        return void res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      if (req.url === '/stream') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': open\n\n');
        return;
      }
      // /slow: never answered; the client's abort ends it
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  it('leaves no listener on the shared signal once each answer is in', async () => {
    const shared = new AbortController();
    const f = isolatedAbortFetch();
    for (let i = 0; i < 300; i++) await (await f(`${url}/json`, { signal: shared.signal })).json();
    expect(getEventListeners(shared.signal, 'abort')).toHaveLength(0);
  });

  it('still aborts a request in flight and an event stream being read', async () => {
    const f = isolatedAbortFetch();
    const shared = new AbortController();
    const slow = f(`${url}/slow`, { signal: shared.signal });
    shared.abort();
    await expect(slow).rejects.toThrow();

    const streamShared = new AbortController();
    const live = await f(`${url}/stream`, { signal: streamShared.signal });
    const reader = live.body!.getReader();
    await reader.read();
    streamShared.abort();
    await expect(reader.read()).rejects.toThrow();
  });
});
