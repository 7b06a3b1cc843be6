/**
 * FleetClient: the typed way for an agent (or the CLI) to use a manager over HTTP and WebSocket.
 * Errors come back as FleetError with the manager's code, so callers branch on `err.code`.
 */
import { randomUUID } from 'node:crypto';
import { WebSocket } from 'ws';
import { FleetError, type FleetErrorShape } from '../protocol/errors.js';
import { ClientChannel, type ChannelProgress } from './client-channel.js';
import { HttpRequester, type HttpAnswer } from './http-request.js';

export type { ChannelProgress } from './client-channel.js';

export interface ClientTask {
  id: string;
  capability: string;
  state: 'queued' | 'assigned' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'timed_out';
  attempt: number;
  maxAttempts: number;
  priority: number;
  timeoutMs: number;
  createdAt: number;
  updatedAt: number;
  startedAt?: number;
  finishedAt?: number;
  workerId?: string;
  sessionId?: string;
  session?: 'create-if-missing';
  /** The worker holding the task's session, while the task waits for it or runs there. */
  sessionWorker?: string;
  payload: unknown;
  output?: unknown;
  error?: FleetErrorShape;
  progress?: { percent?: number; message?: string };
  artifacts?: { name: string; contentType: string; size: number; url: string }[];
  attempts: {
    attempt: number;
    workerId: string;
    startedAt: number;
    finishedAt?: number;
    outcome?: string;
    error?: FleetErrorShape;
  }[];
}

export interface ClientWorker {
  workerId: string;
  workerType: string;
  endpoint: string;
  port: number;
  status: 'online' | 'offline' | 'busy' | 'error';
  capabilities: string[];
  currentLoad: number;
  lastHeartbeat: string;
  maxConcurrency: number;
  inFlight: number;
  draining: boolean;
  version: string;
  info: Record<string, unknown>;
  metrics: Record<string, unknown>;
}

export interface ClientCapability {
  capability: string;
  description: string;
  payloadSchema?: Record<string, unknown>;
  resultSchema?: Record<string, unknown>;
  idempotent: boolean;
  readOnly: boolean;
  artifactTypes: string[];
  workerTypes: string[];
  workers: number;
}

export interface SubmitOptions {
  id?: string;
  priority?: number;
  timeoutMs?: number;
  maxAttempts?: number;
  idempotencyKey?: string;
  sessionId?: string;
  /** `create-if-missing`: when the session's worker is gone, start the session afresh instead of `session_lost`. */
  session?: 'create-if-missing';
}

export interface FleetClientOptions {
  /** e.g. http://127.0.0.1:3000 */
  url: string;
  token?: string;
  /** Per-request deadline for ordinary calls (not waits). */
  timeoutMs?: number;
  /**
   * `websocket`: submit, execute, submitMany, wait, cancel and get go over one persistent WebSocket
   * (`/api/channel`), reconnecting and resubscribing by itself; call close() when done. `http` (the default):
   * one HTTP request per call. Other calls are HTTP either way.
   */
  channel?: 'http' | 'websocket';
  /** websocket channel: how long to keep trying to reconnect before waiting calls fail. @default 30 000 */
  reconnectTimeoutMs?: number;
}

/** One task of a `submitMany` batch. */
export interface BatchTask extends SubmitOptions {
  capability: string;
  payload?: unknown;
}

/** Longest a single long-poll is held, well under the idle timeouts of common proxies. */
const WAIT_SLICE_MS = 25_000;
const FINAL_STATES: readonly string[] = ['succeeded', 'failed', 'cancelled', 'timed_out'];

export class FleetClient {
  private readonly base: string;
  private readonly http: HttpRequester;
  /** The headers of a request without and with a JSON body: the same for every request of this client. */
  private readonly headers: { bare: Record<string, string>; json: Record<string, string> };
  private channelInstance: ClientChannel | undefined;

  constructor(private readonly options: FleetClientOptions) {
    this.base = options.url.replace(/\/+$/, '');
    this.http = new HttpRequester(this.base);
    const bare: Record<string, string> = options.token ? { authorization: `Bearer ${options.token}` } : {};
    this.headers = { bare, json: { 'content-type': 'application/json', ...bare } };
  }

  /** The persistent channel, opened on first use (websocket mode only). */
  private get channel(): ClientChannel | undefined {
    if (this.options.channel !== 'websocket') return undefined;
    this.channelInstance ??= new ClientChannel({
      url: `${this.base.replace(/^http/, 'ws')}/api/channel`,
      ...(this.options.token ? { token: this.options.token } : {}),
      ...(this.options.reconnectTimeoutMs !== undefined
        ? { reconnectTimeoutMs: this.options.reconnectTimeoutMs }
        : {}),
    });
    return this.channelInstance;
  }

  /** websocket mode: opens the channel now instead of on the first call (a no-op over HTTP). */
  async connect(): Promise<void> {
    await this.channel?.connect();
  }

  /**
   * Closes the websocket channel (calls still waiting on it fail with `manager_unreachable`) and the idle
   * HTTP keep-alive connections.
   */
  close(): void {
    this.http.close();
    this.channelInstance?.close();
    this.channelInstance = undefined;
  }

  /** Runs a channel request, giving up on it (and answering with `onTimeout`) after `timeoutMs`. */
  private async overChannel<T>(
    channel: ClientChannel,
    frame: Record<string, unknown>,
    answer: 'accepted' | 'result' | 'task',
    timeoutMs?: number,
    onTimeout?: () => Promise<T>,
    onProgress?: (p: ChannelProgress) => void,
  ): Promise<Record<string, unknown> | T> {
    const { rid, done } = channel.request(frame, answer, onProgress);
    if (timeoutMs === undefined || !onTimeout) return done;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), timeoutMs)));
    try {
      const first = await Promise.race([done, late]);
      if (first !== 'late') return first;
      channel.abandon(rid);
      return onTimeout();
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Submits several tasks in one request (fan-out). The manager validates the whole batch before it stores
   * any task: one bad entry refuses them all, with the entry's index in `details.index`.
   */
  async submitMany(tasks: BatchTask[]): Promise<{ task: ClientTask; created: boolean }[]> {
    const channel = this.channel;
    if (channel) {
      // Client-chosen ids make a batch sent again after a reconnect find its tasks instead of doubling them.
      const withIds = tasks.map((t) => ({ ...t, id: t.id ?? randomUUID() }));
      const r = await channel.request({ type: 'submitMany', tasks: withIds }, 'accepted').done;
      return r.tasks as { task: ClientTask; created: boolean }[];
    }
    return (
      await this.request<{ tasks: { task: ClientTask; created: boolean }[] }>('POST', '/api/tasks:batch', {
        tasks,
      })
    ).tasks;
  }

  async submit(capability: string, payload: unknown, options: SubmitOptions = {}): Promise<ClientTask> {
    const channel = this.channel;
    if (channel) {
      const task = { capability, payload, ...options, id: options.id ?? randomUUID() };
      return (await channel.request({ type: 'submit', task }, 'accepted').done).task as ClientTask;
    }
    const r = await this.request<{ task: ClientTask }>('POST', '/api/tasks', {
      capability,
      payload,
      ...options,
    });
    return r.task;
  }

  /** Submits and waits for the final state (the spec's executeTask). */
  async execute(
    capability: string,
    payload: unknown,
    options: SubmitOptions & {
      waitMs?: number;
      /** websocket channel only: called with each progress report of the task. */
      onProgress?: (progress: ChannelProgress) => void;
    } = {},
  ): Promise<ClientTask> {
    const { waitMs = 300_000, onProgress, ...submit } = options;
    const channel = this.channel;
    if (channel) {
      const task = { capability, payload, ...submit, id: submit.id ?? randomUUID() };
      const r = await this.overChannel(
        channel,
        { type: 'submit', task, wait: true, ...(onProgress ? { progress: true } : {}) },
        'result',
        waitMs,
        () => this.get(task.id).then((t) => ({ task: t })),
        onProgress,
      );
      return r.task as ClientTask;
    }
    const deadline = Date.now() + waitMs;
    // One request for a task that finishes within a long-poll slice; a longer one goes on with wait().
    const slice = Math.min(waitMs, WAIT_SLICE_MS);
    const { task } = await this.request<{ task: ClientTask }>(
      'POST',
      `/api/tasks?wait=true&timeoutMs=${slice}`,
      { capability, payload, ...submit },
      slice + 10_000,
    );
    if (FINAL_STATES.includes(task.state)) return task;
    return this.wait(task.id, Math.max(0, deadline - Date.now()));
  }

  async get(id: string): Promise<ClientTask> {
    const channel = this.channel;
    if (channel) return (await channel.request({ type: 'get', taskId: id }, 'task').done).task as ClientTask;
    return (await this.request<{ task: ClientTask }>('GET', `/api/tasks/${encodeURIComponent(id)}`)).task;
  }

  /** Long-polls until the task is final (or `timeoutMs` passes: then the current state comes back). */
  async wait(id: string, timeoutMs = 300_000): Promise<ClientTask> {
    const channel = this.channel;
    if (channel) {
      const r = await this.overChannel(channel, { type: 'wait', taskId: id }, 'result', timeoutMs, () =>
        this.get(id).then((t) => ({ task: t })),
      );
      return r.task as ClientTask;
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const left = Math.max(0, deadline - Date.now());
      const slice = Math.min(left, WAIT_SLICE_MS);
      const r = await this.request<{ task: ClientTask }>(
        'GET',
        `/api/tasks/${encodeURIComponent(id)}/wait?timeoutMs=${slice}`,
        undefined,
        slice + 10_000,
      );
      if (FINAL_STATES.includes(r.task.state) || left <= slice) return r.task;
    }
  }

  async cancel(id: string): Promise<ClientTask> {
    const channel = this.channel;
    if (channel)
      return (await channel.request({ type: 'cancel', taskId: id }, 'task').done).task as ClientTask;
    return (await this.request<{ task: ClientTask }>('POST', `/api/tasks/${encodeURIComponent(id)}/cancel`))
      .task;
  }

  async retry(id: string): Promise<ClientTask> {
    return (await this.request<{ task: ClientTask }>('POST', `/api/tasks/${encodeURIComponent(id)}/retry`))
      .task;
  }

  async list(
    filter: { state?: string; capability?: string; workerId?: string; limit?: number } = {},
  ): Promise<ClientTask[]> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(filter)) if (v !== undefined) q.set(k, String(v));
    return (await this.request<{ tasks: ClientTask[] }>('GET', `/api/tasks${q.size ? `?${q}` : ''}`)).tasks;
  }

  async artifact(id: string, name: string): Promise<{ contentType: string; data: Buffer }> {
    const res = await this.raw(
      'GET',
      `/api/tasks/${encodeURIComponent(id)}/artifacts/${encodeURIComponent(name)}`,
    );
    return { contentType: res.headers['content-type'] ?? 'application/octet-stream', data: res.body };
  }

  /**
   * The progress reports the manager kept for a task (its dashboard's log: the last 100 per task, for the 200
   * most recent tasks, each text cut at 500 characters); `log` entries read "[stdout] text".
   */
  async progressLog(
    id: string,
  ): Promise<{ t: number; attempt: number; percent?: number; message?: string; log?: string }[]> {
    const r = await this.request<{ task: { progressLog?: [] } }>(
      'GET',
      `/dashboard/api/tasks/${encodeURIComponent(id)}`,
    );
    return r.task.progressLog ?? [];
  }

  async workers(): Promise<ClientWorker[]> {
    return (await this.request<{ workers: ClientWorker[] }>('GET', '/api/workers')).workers;
  }

  /** The capability catalog: what the fleet offers now, with each capability's schemas and flags. */
  async capabilities(): Promise<{ capabilities: ClientCapability[]; offline: string[] }> {
    return this.request('GET', '/api/capabilities');
  }

  async status(): Promise<{
    managerId: string;
    workers: ClientWorker[];
    types: Record<string, unknown>;
    queue: { depth: number; byCapability: Record<string, number> };
  }> {
    return this.request('GET', '/api/status');
  }

  async registerWorker(
    endpoint: string,
    workerType?: string,
  ): Promise<{ endpoint: string; workerId?: string; error?: string }> {
    return this.request('POST', '/api/workers', { endpoint, ...(workerType ? { workerType } : {}) });
  }

  async drainWorker(workerId: string): Promise<void> {
    await this.request('POST', `/api/workers/${encodeURIComponent(workerId)}/drain`);
  }

  async resumeWorker(workerId: string): Promise<void> {
    await this.request('POST', `/api/workers/${encodeURIComponent(workerId)}/resume`);
  }

  async restartWorker(workerId: string): Promise<boolean> {
    return (
      await this.request<{ ok: boolean }>('POST', `/api/workers/${encodeURIComponent(workerId)}/restart`)
    ).ok;
  }

  /** Subscribes to the live event stream; returns a function that closes it. */
  events(
    onEvent: (event: Record<string, unknown>) => void,
    filter: { taskId?: string; types?: string[] } = {},
  ): Promise<() => void> {
    const url = new URL(`${this.base.replace(/^http/, 'ws')}/api/events`);
    if (filter.taskId) url.searchParams.set('taskId', filter.taskId);
    if (filter.types) url.searchParams.set('types', filter.types.join(','));
    const ws = new WebSocket(url, {
      headers: this.options.token ? { authorization: `Bearer ${this.options.token}` } : {},
    });
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(() => ws.close()));
      ws.once('error', (err) => reject(new FleetError('worker_lost', `event stream: ${err.message}`)));
      ws.once('unexpected-response', (_req, res) =>
        reject(
          new FleetError(
            res.statusCode === 401 ? 'unauthorized' : 'internal',
            `event stream: HTTP ${res.statusCode}`,
          ),
        ),
      );
      ws.on('message', (data) => {
        try {
          onEvent(JSON.parse((data as Buffer).toString('utf8')) as Record<string, unknown>);
        } catch {
          // The manager only sends JSON; a broken frame is not worth killing the subscriber over.
        }
      });
    });
  }

  private async raw(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<HttpAnswer> {
    let res: HttpAnswer;
    try {
      res = await this.http.request(
        path,
        method,
        body !== undefined ? this.headers.json : this.headers.bare,
        body !== undefined ? JSON.stringify(body) : undefined,
        timeoutMs ?? this.options.timeoutMs ?? 30_000,
      );
    } catch (err) {
      throw new FleetError(
        'manager_unreachable',
        `cannot reach the Fleet manager at ${this.base}: ${(err as Error).message}`,
      );
    }
    if (res.status < 200 || res.status >= 300) {
      let shape: FleetErrorShape | undefined;
      try {
        shape = (JSON.parse(res.body.toString('utf8')) as { error?: FleetErrorShape }).error;
      } catch {
        // fall through to the generic error
      }
      throw shape
        ? FleetError.from(shape)
        : new FleetError('internal', `manager answered HTTP ${res.status}`);
    }
    return res;
  }

  private async request<T>(method: string, path: string, body?: unknown, timeoutMs?: number): Promise<T> {
    const res = await this.raw(method, path, body, timeoutMs);
    return JSON.parse(res.body.toString('utf8')) as T;
  }
}
