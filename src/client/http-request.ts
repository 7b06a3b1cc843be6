/**
 * FleetClient's HTTP transport: node:http(s) with one keep-alive agent per client. It replaced `fetch`, which
 * cost the client process about 360 µs of CPU per no-op `execute` against 60 µs for this, and was the
 * ceiling of the closed-loop HTTP throughput (docs/performance.md).
 */
import http from 'node:http';
import https from 'node:https';

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export class HttpRequester {
  private readonly agent: http.Agent;
  private readonly module: typeof http | typeof https;

  constructor(base: string) {
    const secure = base.startsWith('https:');
    this.module = secure ? https : http;
    // LIFO reuse keeps the busiest connections warm and lets idle ones age out on the server's timeout;
    // no request waits on Nagle's algorithm for the ACK of the one before.
    const options = { keepAlive: true, scheduling: 'lifo' as const, noDelay: true };
    this.agent = secure ? new https.Agent(options) : new http.Agent(options);
  }

  /**
   * One request, answered with the whole body; rejects on a network failure or after `timeoutMs`. A request
   * on a reused keep-alive connection that the server had just closed is sent once more on a fresh one: the
   * server dropped it unread (Node's documented pattern for `reusedSocket`).
   */
  async request(
    url: URL,
    method: string,
    headers: Record<string, string>,
    body: string | undefined,
    timeoutMs: number,
  ): Promise<HttpAnswer> {
    try {
      return await this.once(url, method, headers, body, timeoutMs);
    } catch (err) {
      if (!(err instanceof StaleConnection)) throw err;
      return this.once(url, method, headers, body, timeoutMs);
    }
  }

  /**
   * Closes the idle keep-alive connections; requests still running finish on theirs. (A process may exit
   * without it: idle sockets are unref'd.)
   */
  close(): void {
    for (const sockets of Object.values(this.agent.freeSockets))
      for (const socket of sockets ?? []) socket.destroy();
  }

  private once(
    url: URL,
    method: string,
    headers: Record<string, string>,
    body: string | undefined,
    timeoutMs: number,
  ): Promise<HttpAnswer> {
    return new Promise<HttpAnswer>((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(body, 'utf8');
      const req = this.module.request(
        url,
        {
          method,
          agent: this.agent,
          headers: payload ? { ...headers, 'content-length': String(payload.length) } : headers,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () => {
            clearTimeout(timer);
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
          });
          res.on('error', (err) => {
            clearTimeout(timer);
            reject(err);
          });
        },
      );
      const timer = setTimeout(() => req.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(req.reusedSocket && err.code === 'ECONNRESET' ? new StaleConnection(err.message) : err);
      });
      req.end(payload);
    });
  }
}

class StaleConnection extends Error {}
