/**
 * FleetClient's HTTP transport: node:http(s) with one keep-alive agent per client. It replaced `fetch`, which
 * cost the client process about 360 µs of CPU per no-op `execute` against 60 µs for this, and was the
 * ceiling of the closed-loop HTTP throughput (docs/performance.md).
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';

export interface HttpAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** TCP keep-alive probes of an idle connection (Node's default). */
const KEEP_ALIVE_MS = 1000;

/**
 * Sets TCP keep-alive once per connection; Node's agent sets it (two setsockopt calls) every time a request
 * hands its connection back.
 */
function keepAlive(configured: WeakSet<Socket>, socket: Socket): boolean {
  if (!configured.has(socket)) {
    configured.add(socket);
    socket.setKeepAlive(true, KEEP_ALIVE_MS);
  }
  socket.unref();
  return true;
}

class KeepAliveAgent extends http.Agent {
  private readonly configured = new WeakSet<Socket>();
  override keepSocketAlive(socket: Socket): boolean {
    return keepAlive(this.configured, socket);
  }
}

class SecureKeepAliveAgent extends https.Agent {
  private readonly configured = new WeakSet<Socket>();
  override keepSocketAlive(socket: Socket): boolean {
    return keepAlive(this.configured, socket);
  }
}

export class HttpRequester {
  private readonly agent: http.Agent;
  private readonly module: typeof http | typeof https;
  /** The base URL taken apart once: a request only appends its path. */
  private readonly target: { hostname: string; port: number | undefined; prefix: string };

  constructor(base: string) {
    const url = new URL(base);
    const secure = url.protocol === 'https:';
    this.module = secure ? https : http;
    // URL keeps an IPv6 literal's brackets; the socket wants the bare address.
    this.target = {
      hostname: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port ? Number(url.port) : undefined,
      prefix: url.pathname.replace(/\/+$/, ''),
    };
    // LIFO reuse keeps the busiest connections warm and lets idle ones age out on the server's timeout;
    // no request waits on Nagle's algorithm for the ACK of the one before.
    const options = {
      keepAlive: true,
      keepAliveMsecs: KEEP_ALIVE_MS,
      scheduling: 'lifo' as const,
      noDelay: true,
    };
    this.agent = secure ? new SecureKeepAliveAgent(options) : new KeepAliveAgent(options);
  }

  /**
   * One request, answered with the whole body; rejects on a network failure or after `timeoutMs`. A request
   * on a reused keep-alive connection that the server had just closed is sent once more on a fresh one: the
   * server dropped it unread (Node's documented pattern for `reusedSocket`).
   */
  async request(
    path: string,
    method: string,
    headers: Record<string, string>,
    body: string | undefined,
    timeoutMs: number,
  ): Promise<HttpAnswer> {
    try {
      return await this.once(path, method, headers, body, timeoutMs);
    } catch (err) {
      if (!(err instanceof StaleConnection)) throw err;
      return this.once(path, method, headers, body, timeoutMs);
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
    path: string,
    method: string,
    headers: Record<string, string>,
    body: string | undefined,
    timeoutMs: number,
  ): Promise<HttpAnswer> {
    return new Promise<HttpAnswer>((resolve, reject) => {
      const req = this.module.request(
        {
          hostname: this.target.hostname,
          port: this.target.port, // undefined: the scheme's default
          path: this.target.prefix + path,
          method,
          agent: this.agent,
          headers:
            body === undefined
              ? headers
              : { ...headers, 'content-length': String(Buffer.byteLength(body, 'utf8')) },
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
      req.end(body, 'utf8');
    });
  }
}

class StaleConnection extends Error {}
