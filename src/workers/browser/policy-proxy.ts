/**
 * A loopback forward proxy, one per task, that every request of the task's browser context goes through
 * (`--proxy-server` per context with `<-loopback>` so loopback is proxied too). Playwright's `route()` misses
 * redirect hops, subresource redirects and WebSockets; a proxy sees all three: plain http arrives as
 * absolute-URI requests, https and ws/wss as CONNECT tunnels.
 *
 * Each request is checked by the URL policy; the host is resolved once and the proxy connects to the address it
 * checked. Refusals are recorded (the task reports them) and answered with 403 + `x-fleet-blocked`, so a blocked
 * redirect hop is visible to the handler as such. One proxy per task also means the task's traffic dies with it.
 *
 * The proxy also serves raw HTML given in a payload at `http://fleet-content.invalid/`, so caller HTML gets an
 * ordinary http origin (Chromium then refuses `file:` frames in it) instead of a privileged about:blank.
 *
 * Downloads: Chromium writes a download as it arrives, so the size cap is kept where the bytes are — here. A
 * response that says `Content-Disposition: attachment` gets the task's download cap from its first byte; any
 * other response that Chromium turns into a download is capped as soon as the page reports it (`capDownload`).
 */
import {
  createServer,
  request as httpRequest,
  Agent,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { connect as netConnect, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { NamespaceListener } from './network-namespace.js';
import { truncate, type UrlPolicy } from './url-policy.js';

export const CONTENT_HOST = 'fleet-content.invalid';
export const CONTENT_URL = `http://${CONTENT_HOST}/`;
export const BLOCKED_HEADER = 'x-fleet-blocked';

export interface BlockedRequest {
  url: string;
  reason: string;
  message: string;
}

const HOP_BY_HOP = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

const MAX_RECORDED = 200;
const MAX_TYPES = 256;

/** A plain-http response on its way to the browser (https rides in tunnels the proxy cannot read). */
interface InFlight {
  bytes: number;
  cap: number;
  download: boolean;
  cut(): void;
}

export function isAttachment(disposition: string | string[] | undefined): boolean {
  const value = Array.isArray(disposition) ? disposition.join(',') : (disposition ?? '');
  return /^\s*attachment\b/i.test(value);
}

export class PolicyProxy {
  private server: Server | undefined;
  private outer: NetServer | undefined;
  private readonly sockets = new Set<Duplex>();
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 16 });
  private content: { body: Buffer; contentType: string } | undefined;
  private closed = false;
  readonly blocked: BlockedRequest[] = [];
  /** URLs of downloads cut for size, and who wants to hear of a cut (the task's download collector). */
  readonly cutDownloads = new Set<string>();
  onDownloadCut: ((url: string) => void) | undefined;
  /** Cap for downloads when the task accepts them; undefined: the task does not. */
  downloadCap: number | undefined;
  private readonly inFlight = new Map<string, Set<InFlight>>();
  private readonly contentTypes = new Map<string, string>();
  /** Responses that said `Content-Disposition: attachment` (each is a download the page will announce). */
  attachments = 0;
  private active = 0;
  private lastActivity = Date.now();
  requests = 0;
  port = 0;

  constructor(
    private readonly policy: UrlPolicy,
    private readonly maxResponseBytes: number,
    /** When true every request is refused (the browser-wide default proxy, outside any task). */
    private readonly denyAll = false,
    /** A listening socket in the browsers' network namespace (absent: listen on this namespace's loopback). */
    private readonly listener?: () => Promise<NamespaceListener>,
  ) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  setContent(html: string): void {
    this.content = { body: Buffer.from(html, 'utf8'), contentType: 'text/html; charset=utf-8' };
  }

  async listen(): Promise<void> {
    const server = createServer({ keepAlive: true });
    server.on('request', (req, res) => void this.onRequest(req, res));
    server.on('connect', (req, socket, head) => void this.onConnect(req, socket, head));
    server.on('upgrade', (req, socket, head) => void this.onUpgrade(req, socket, head));
    server.on('connection', (s: Socket) => this.track(s));
    server.on('clientError', (_err, socket) => socket.destroy());
    this.server = server;
    if (this.listener) {
      // Accepted in this process, created in the browsers' namespace: the only place a browser can connect to.
      const { server: outer, port } = await this.listener();
      this.outer = outer;
      outer.on('connection', (socket: Socket) => server.emit('connection', socket));
      outer.on('error', () => undefined);
      this.port = port;
      if (this.closed) outer.close();
      return;
    }
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const addr = server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    this.agent.destroy();
    const outer = this.outer;
    if (outer) await new Promise<void>((resolve) => outer.close(() => resolve()));
    const server = this.server;
    if (server?.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private track(s: Duplex): void {
    if (this.closed) {
      s.destroy();
      return;
    }
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
    s.on('error', () => s.destroy());
  }

  /**
   * Resolves once no plain-http exchange has been open for `quietMs`, or at `deadline`: a click returns before
   * the request it starts is answered, and a download is only known when its answer arrives.
   */
  async quiet(quietMs: number, deadline: number): Promise<void> {
    // Quiet counts from the call too: the request a click just started may not have reached the proxy yet.
    const start = Date.now();
    for (;;) {
      const now = Date.now();
      if (now >= deadline) return;
      const idleFor = this.active === 0 ? now - Math.max(this.lastActivity, start) : 0;
      if (idleFor >= quietMs) return;
      await new Promise((r) => setTimeout(r, Math.min(quietMs - idleFor, deadline - now, 50)).unref());
    }
  }

  /** The content type a URL was last answered with (known for plain http only). */
  contentTypeOf(url: string): string | undefined {
    return this.contentTypes.get(url);
  }

  /**
   * The page reported a download of `url`: its responses in flight are held to `maxBytes` from now on, and one
   * already past it is cut. True when it was cut (now or before).
   */
  capDownload(url: string, maxBytes: number): boolean {
    for (const entry of this.inFlight.get(url) ?? []) {
      entry.download = true;
      entry.cap = Math.min(entry.cap, maxBytes);
      if (entry.bytes > entry.cap) this.cutDownload(url, entry);
    }
    return this.cutDownloads.has(url);
  }

  private cutDownload(url: string, entry: InFlight): void {
    entry.cut();
    if (this.cutDownloads.has(url)) return;
    this.cutDownloads.add(url);
    this.record(url, 'size', `download over ${entry.cap} bytes`);
    this.onDownloadCut?.(url);
  }

  private rememberType(url: string, type: string | undefined): void {
    if (!type) return;
    if (this.contentTypes.size >= MAX_TYPES) {
      const oldest = this.contentTypes.keys().next().value;
      if (oldest !== undefined) this.contentTypes.delete(oldest);
    }
    this.contentTypes.set(url, type);
  }

  private record(url: string, reason: string, message: string): void {
    if (this.blocked.length < MAX_RECORDED) this.blocked.push({ url: truncate(url), reason, message });
  }

  private async check(
    url: string,
    host: string,
    port: number,
  ): Promise<{ address: string } | { refused: string; reason: string }> {
    if (this.denyAll) return { refused: 'no task owns this request', reason: 'no-task' };
    const v = await this.policy.resolveAndCheck(host, port);
    if (!v.allowed || !v.address) {
      const message = v.message ?? 'refused';
      this.record(url, v.reason ?? 'refused', message);
      return { refused: message, reason: v.reason ?? 'refused' };
    }
    return { address: v.address };
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests++;
    this.active++;
    this.lastActivity = Date.now();
    res.once('close', () => {
      this.active--;
      this.lastActivity = Date.now();
    });
    res.on('error', () => undefined);
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      res.writeHead(400, { 'content-type': 'text/plain' }).end('fleet proxy: absolute URL required');
      return;
    }
    if (target.protocol !== 'http:') {
      this.record(target.href, 'scheme', `scheme ${target.protocol} through the proxy`);
      this.refuse(res, 'scheme', `scheme ${target.protocol} is not allowed`);
      return;
    }
    if (target.hostname === CONTENT_HOST && !this.denyAll) {
      this.serveContent(req, res, target);
      return;
    }
    if (!this.policy.options.allowed_schemes.includes('http')) {
      this.record(target.href, 'scheme', 'http is not allowed');
      this.refuse(res, 'scheme', 'http is not allowed');
      return;
    }
    const port = target.port ? Number(target.port) : 80;
    const verdict = await this.check(target.href, target.hostname, port);
    if ('refused' in verdict) {
      this.refuse(res, verdict.reason, verdict.refused);
      return;
    }
    const headers: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
    headers.host = target.host;
    const upstream = httpRequest({
      host: verdict.address,
      port,
      method: req.method,
      path: `${target.pathname}${target.search}`,
      headers,
      agent: this.agent,
      setHost: false,
    });
    upstream.on('response', (up) => {
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
      const href = target.href;
      const attachment = isAttachment(up.headers['content-disposition']);
      if (attachment) this.attachments++;
      const download = this.downloadCap !== undefined && attachment;
      const entry: InFlight = {
        bytes: 0,
        cap: download ? Math.min(this.maxResponseBytes, this.downloadCap!) : this.maxResponseBytes,
        download,
        cut: () => {
          up.destroy();
          res.destroy();
        },
      };
      this.rememberType(href, up.headers['content-type']);
      let set = this.inFlight.get(href);
      if (!set) this.inFlight.set(href, (set = new Set()));
      set.add(entry);
      const done = () => {
        set.delete(entry);
        if (set.size === 0 && this.inFlight.get(href) === set) this.inFlight.delete(href);
      };
      res.once('close', done);
      res.writeHead(up.statusCode ?? 502, up.statusMessage, out);
      // A declared length over the cap: no byte of the body is worth sending. The headers go first so Chromium
      // starts (and then loses) the download rather than showing an error page.
      const declared = Number(up.headers['content-length']);
      if (download && Number.isFinite(declared) && declared > entry.cap) {
        res.flushHeaders();
        setImmediate(() => this.cutDownload(href, entry));
        return;
      }
      up.on('data', (chunk: Buffer) => {
        entry.bytes += chunk.length;
        if (entry.bytes <= entry.cap) return;
        if (entry.download) this.cutDownload(href, entry);
        else {
          this.record(href, 'size', `response over ${this.maxResponseBytes} bytes`);
          entry.cut();
        }
      });
      up.pipe(res);
    });
    upstream.on('error', (err) => {
      if (!res.headersSent)
        res.writeHead(502, { 'content-type': 'text/plain' }).end(`fleet proxy: ${err.message}`);
      else res.destroy();
    });
    req.pipe(upstream);
  }

  private serveContent(req: IncomingMessage, res: ServerResponse, target: URL): void {
    if (target.pathname === '/' && this.content && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(200, { 'content-type': this.content.contentType, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : this.content.body);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  }

  private refuse(res: ServerResponse, reason: string, message: string): void {
    res.writeHead(403, {
      'content-type': 'text/plain; charset=utf-8',
      [BLOCKED_HEADER]: reason,
      'cache-control': 'no-store',
    });
    res.end(`Blocked by the Fleet URL policy: ${message}\n`);
  }

  private async onConnect(req: IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    this.requests++;
    this.track(client);
    const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(req.url ?? '');
    if (!m) {
      client.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    const host = m[1]!;
    const port = Number(m[2]);
    const label = `${port === 443 ? 'https' : 'tunnel'}://${req.url}`;
    if (!this.policy.options.allowed_schemes.includes('https') && !this.denyAll) {
      this.record(label, 'scheme', 'https is not allowed');
      refuseSocket(client, 'scheme');
      return;
    }
    const verdict = await this.check(label, host, port);
    if ('refused' in verdict) {
      refuseSocket(client, verdict.reason);
      return;
    }
    const upstream = netConnect({ host: verdict.address, port });
    this.track(upstream);
    upstream.once('connect', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      this.pipeCapped(upstream, client, label);
      client.pipe(upstream);
    });
    upstream.once('error', () => {
      if (client.writable) client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
    });
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  }

  /** Plain-http WebSocket through the proxy in absolute form (Chromium normally tunnels, but accept both). */
  private async onUpgrade(req: IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    this.requests++;
    this.track(client);
    let target: URL;
    try {
      target = new URL(req.url ?? '');
    } catch {
      client.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    const port = target.port ? Number(target.port) : 80;
    const verdict = await this.check(target.href, target.hostname, port);
    if ('refused' in verdict) {
      refuseSocket(client, verdict.reason);
      return;
    }
    const upstream = netConnect({ host: verdict.address, port });
    this.track(upstream);
    upstream.once('connect', () => {
      const lines = [`${req.method} ${target.pathname}${target.search} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const k = req.rawHeaders[i]!;
        if (/^proxy-/i.test(k)) continue;
        lines.push(`${k}: ${req.rawHeaders[i + 1]}`);
      }
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) upstream.write(head);
      this.pipeCapped(upstream, client, target.href);
      client.pipe(upstream);
    });
    upstream.once('error', () => client.destroy());
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => client.destroy());
  }

  private pipeCapped(from: Duplex, to: Duplex, label: string): void {
    let bytes = 0;
    from.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > this.maxResponseBytes) {
        this.record(label, 'size', `tunnel over ${this.maxResponseBytes} bytes`);
        from.destroy();
        to.destroy();
      }
    });
    from.pipe(to);
  }
}

/** Answers a CONNECT or upgrade the policy refused; the header tells the page session why. */
function refuseSocket(client: Duplex, reason: string): void {
  client.end(`HTTP/1.1 403 Forbidden\r\n${BLOCKED_HEADER}: ${reason}\r\ncontent-length: 0\r\n\r\n`);
}
