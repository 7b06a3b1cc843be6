/**
 * The gateway's MCP Streamable HTTP transport (server side, one per MCP session), on Node's own request and
 * response objects.
 *
 * Why not the SDK's `StreamableHTTPServerTransport`: it turns every request into a web `Request` (through
 * @hono/node-server), answers through a web `ReadableStream`, and answers every POST that carries a request
 * with an SSE stream, written in several pieces. For an echo `tools/call` that conversion and the SSE framing
 * on both ends cost about as much as the task itself (docs/performance.md, "MCP gateway").
 *
 * What differs on the wire: the answer to a POST goes out as one `application/json` body when nothing else
 * had to be sent for it first — the usual call, without progress. The response becomes an SSE stream (which
 * the spec equally allows) as soon as a message for the request must go out before its answer (progress,
 * python's stdout), or once the call has run for the keep-alive interval, so proxies see bytes on a long call.
 * Everything else follows the SDK's transport: the session header, the protocol-version header, the Accept
 * and Content-Type checks, batches, 202 for notifications, one standalone GET stream, DELETE, keep-alives.
 * There is no event store (no resumption), as before.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Transport, TransportSendOptions } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  JSONRPCMessageSchema,
  SUPPORTED_PROTOCOL_VERSIONS,
  isInitializeRequest,
  type JSONRPCMessage,
  type MessageExtraInfo,
  type RequestId,
} from '@modelcontextprotocol/sdk/types.js';

/** The SDK's limit on messages in one POST. */
const MAX_BATCH = 100;
export const DEFAULT_KEEP_ALIVE_MS = 15_000;

const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  connection: 'keep-alive',
  'x-accel-buffering': 'no',
} as const;

export interface McpHttpTransportOptions {
  sessionIdGenerator: () => string;
  onsessioninitialized?: (sessionId: string) => void;
  onsessionclosed?: (sessionId: string) => void | Promise<void>;
  /** An open SSE stream gets a comment this often; a POST still unanswered by then turns into one. */
  keepAliveMs?: number;
}

/** One POST that carried requests: its HTTP response stays open until every one of them is answered. */
interface OpenPost {
  res: ServerResponse;
  ids: RequestId[];
  answers: Map<RequestId, JSONRPCMessage>;
  /** Headers are out as text/event-stream: messages are written as events as they come. */
  sse: boolean;
  done: boolean;
  keepAlive?: NodeJS.Timeout;
}

const isResponse = (m: JSONRPCMessage): m is JSONRPCMessage & { id: RequestId } =>
  !('method' in m) && 'id' in m;
const isRequest = (m: JSONRPCMessage): m is JSONRPCMessage & { id: RequestId; method: string } =>
  'method' in m && 'id' in m;

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function sseEvent(message: JSONRPCMessage): string {
  return `event: message\ndata: ${JSON.stringify(message)}\n\n`;
}

export class McpHttpTransport implements Transport {
  sessionId?: string;
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;

  private started = false;
  private initialized = false;
  private closed = false;
  private readonly keepAliveMs: number;
  private readonly posts = new Map<RequestId, OpenPost>();
  private standalone: { res: ServerResponse; keepAlive?: NodeJS.Timeout } | undefined;

  constructor(private readonly options: McpHttpTransportOptions) {
    this.keepAliveMs = options.keepAliveMs ?? DEFAULT_KEEP_ALIVE_MS;
  }

  start(): Promise<void> {
    if (this.started) return Promise.reject(new Error('Transport already started'));
    this.started = true;
    return Promise.resolve();
  }

  /** Serves one HTTP request of this session; `body` is the JSON the web framework already parsed. */
  async handleRequest(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    if (this.closed) return this.refuse(res, 404, -32001, 'Session not found');
    switch (req.method) {
      case 'POST':
        return this.post(req, res, body);
      case 'GET':
        return this.get(req, res);
      case 'DELETE':
        return this.delete(req, res);
      default:
        res.setHeader('allow', 'GET, POST, DELETE');
        return this.refuse(res, 405, -32000, 'Method not allowed.');
    }
  }

  private async post(req: IncomingMessage, res: ServerResponse, body: unknown): Promise<void> {
    // Accept is a list: a substring check is what the SDK does too.
    const accept = header(req, 'accept') ?? '';
    if (!accept.includes('application/json') || !accept.includes('text/event-stream')) {
      return this.refuse(
        res,
        406,
        -32000,
        'Not Acceptable: Client must accept both application/json and text/event-stream',
      );
    }
    const type = (header(req, 'content-type') ?? '').split(';', 1)[0]!.trim().toLowerCase();
    if (type !== 'application/json') {
      return this.refuse(res, 415, -32000, 'Unsupported Media Type: Content-Type must be application/json');
    }
    if (Array.isArray(body) && body.length > MAX_BATCH) {
      return this.refuse(res, 400, -32600, `Invalid Request: Batch must not exceed ${MAX_BATCH} messages`);
    }
    const messages: JSONRPCMessage[] = [];
    for (const raw of Array.isArray(body) ? body : [body]) {
      const parsed = JSONRPCMessageSchema.safeParse(raw);
      if (!parsed.success) return this.refuse(res, 400, -32700, 'Parse error: Invalid JSON-RPC message');
      messages.push(parsed.data);
    }
    // `method` first: the full initialize check is a schema parse, needless for every other message.
    const init = messages.some((m) => 'method' in m && m.method === 'initialize' && isInitializeRequest(m));
    if (init) {
      if (this.initialized) {
        return this.refuse(res, 400, -32600, 'Invalid Request: Server already initialized');
      }
      if (messages.length > 1) {
        return this.refuse(res, 400, -32600, 'Invalid Request: Only one initialization request is allowed');
      }
      this.sessionId = this.options.sessionIdGenerator();
      this.initialized = true;
      this.options.onsessioninitialized?.(this.sessionId);
    } else if (!this.checkSession(req, res)) {
      return;
    }
    const extra: MessageExtraInfo = { requestInfo: { headers: req.headers } };
    const ids = [...new Set(messages.filter(isRequest).map((m) => m.id))];
    if (ids.length === 0) {
      res.writeHead(202).end();
      this.deliver(messages, extra);
      return;
    }
    const post: OpenPost = { res, ids, answers: new Map(), sse: false, done: false };
    for (const id of ids) this.posts.set(id, post);
    // The client went away: its answers have nowhere to go (the calls run on, as with the SDK's transport;
    // cancelling is what notifications/cancelled is for).
    res.once('close', () => this.release(post));
    post.keepAlive = setInterval(() => {
      if (!post.sse) this.openSse(post);
      post.res.write(': keepalive\n\n');
    }, this.keepAliveMs).unref();
    this.deliver(messages, extra);
  }

  private deliver(messages: JSONRPCMessage[], extra: MessageExtraInfo): void {
    for (const m of messages) {
      this.onmessage?.(m, extra);
      if ('method' in m && m.method === 'notifications/cancelled') this.cancelled(m.params);
    }
  }

  private get(req: IncomingMessage, res: ServerResponse): void {
    if (!(header(req, 'accept') ?? '').includes('text/event-stream')) {
      return this.refuse(res, 406, -32000, 'Not Acceptable: Client must accept text/event-stream');
    }
    if (!this.checkSession(req, res)) return;
    if (this.standalone) {
      return this.refuse(res, 409, -32000, 'Conflict: Only one SSE stream is allowed per session');
    }
    res.writeHead(200, this.headers(SSE_HEADERS));
    // The client's GET resolves on the headers; without a flush they would wait for the first event.
    res.flushHeaders();
    const stream: { res: ServerResponse; keepAlive?: NodeJS.Timeout } = { res };
    stream.keepAlive = setInterval(() => res.write(': keepalive\n\n'), this.keepAliveMs).unref();
    this.standalone = stream;
    res.once('close', () => {
      clearInterval(stream.keepAlive);
      if (this.standalone === stream) this.standalone = undefined;
    });
  }

  private async delete(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.checkSession(req, res)) return;
    try {
      await this.options.onsessionclosed?.(this.sessionId!);
      res.writeHead(200).end();
    } finally {
      await this.close();
    }
  }

  /** Session and protocol-version headers of a request after initialize; false when refused. */
  private checkSession(req: IncomingMessage, res: ServerResponse): boolean {
    if (!this.initialized) {
      this.refuse(res, 400, -32000, 'Bad Request: Server not initialized');
      return false;
    }
    const id = header(req, 'mcp-session-id');
    if (!id) {
      this.refuse(res, 400, -32000, 'Bad Request: Mcp-Session-Id header is required');
      return false;
    }
    if (id !== this.sessionId) {
      this.refuse(res, 404, -32001, 'Session not found');
      return false;
    }
    const version = header(req, 'mcp-protocol-version');
    if (version !== undefined && !SUPPORTED_PROTOCOL_VERSIONS.includes(version)) {
      const supported = SUPPORTED_PROTOCOL_VERSIONS.join(', ');
      this.refuse(
        res,
        400,
        -32000,
        `Bad Request: Unsupported protocol version: ${version} (supported versions: ${supported})`,
      );
      return false;
    }
    return true;
  }

  send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    const requestId = isResponse(message) ? message.id : options?.relatedRequestId;
    if (requestId === undefined) {
      if (isResponse(message)) {
        return Promise.reject(
          new Error(
            'Cannot send a response on a standalone SSE stream unless resuming a previous client request',
          ),
        );
      }
      // Server-initiated (tools/list_changed): on the GET stream if the client holds one, else dropped.
      this.standalone?.res.write(sseEvent(message));
      return Promise.resolve();
    }
    const post = this.posts.get(requestId);
    if (!post) {
      return Promise.reject(new Error(`No connection established for request ID: ${String(requestId)}`));
    }
    if (!isResponse(message)) {
      if (!post.sse) this.openSse(post);
      post.res.write(sseEvent(message));
      return Promise.resolve();
    }
    post.answers.set(requestId, message);
    if (post.sse) post.res.write(sseEvent(message));
    if (post.answers.size === post.ids.length) this.finish(post);
    return Promise.resolve();
  }

  /** Headers become text/event-stream; answers already in (a batch's) go first. */
  private openSse(post: OpenPost): void {
    post.sse = true;
    post.res.writeHead(200, this.headers(SSE_HEADERS));
    for (const answer of post.answers.values()) post.res.write(sseEvent(answer));
  }

  private finish(post: OpenPost): void {
    this.release(post);
    if (post.sse) {
      post.res.end();
      return;
    }
    const answers = post.ids.map((id) => post.answers.get(id));
    const body = JSON.stringify(answers.length === 1 ? answers[0] : answers);
    // One write: headers and body together, with a content-length.
    post.res
      .writeHead(
        200,
        this.headers({
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
        }),
      )
      .end(body);
  }

  private release(post: OpenPost): void {
    if (post.done) return;
    post.done = true;
    clearInterval(post.keepAlive);
    for (const id of post.ids) if (this.posts.get(id) === post) this.posts.delete(id);
  }

  /**
   * The SDK's server never answers a cancelled request: once nothing else in its POST awaits an answer, the
   * POST is finished here (an empty event stream when it held only that request).
   */
  private cancelled(params: unknown): void {
    const id = (params as { requestId?: RequestId } | undefined)?.requestId;
    const post = id === undefined ? undefined : this.posts.get(id);
    if (!post || post.answers.has(id!)) return;
    post.ids = post.ids.filter((x) => x !== id);
    this.posts.delete(id!);
    if (post.answers.size < post.ids.length) return;
    if (post.ids.length > 0) return this.finish(post);
    this.release(post);
    if (!post.sse) this.openSse(post);
    post.res.end();
  }

  private headers(base: Record<string, string>): Record<string, string> {
    return this.sessionId === undefined ? base : { ...base, 'mcp-session-id': this.sessionId };
  }

  private refuse(res: ServerResponse, status: number, code: number, message: string): void {
    this.onerror?.(new Error(message));
    res
      .writeHead(status, { 'content-type': 'application/json' })
      .end(JSON.stringify({ jsonrpc: '2.0', error: { code, message }, id: null }));
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    for (const post of new Set(this.posts.values())) {
      this.release(post);
      if (!post.sse) this.openSse(post);
      post.res.end();
    }
    this.posts.clear();
    if (this.standalone) {
      clearInterval(this.standalone.keepAlive);
      this.standalone.res.end();
      this.standalone = undefined;
    }
    this.onclose?.();
    return Promise.resolve();
  }
}
