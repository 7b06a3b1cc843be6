/**
 * The Figma REST client. Written for the real API (https://api.figma.com; a personal access token in
 * `X-Figma-Token`, an OAuth access token in `Authorization: Bearer`) and proven against the loopback fake
 * in `fake/`.
 *
 * Layers, outermost first: cache (LRU keyed by request + file version) → single-flight (identical
 * concurrent requests share one) → per-tier token bucket → HTTP with retries (429 honoured when
 * `Retry-After` fits the caller's deadline, jittered backoff on 5xx and network errors, never on other 4xx).
 *
 * File versions: every file-scoped answer is cached under the file's `version`. The version itself is
 * learned from the cheap tier-3 meta endpoint (or from any file answer that carries it) and trusted for
 * `cache.version_ttl`; so a repeated call inside that window costs no request, and an edited file never
 * serves stale nodes for longer than the window.
 *
 * The token is sent only to the configured base URL (never to the render/CDN URLs the API hands out) and
 * never appears in errors, logs or stats.
 */
import type { Logger } from 'pino';
import type {
  GetFileComponentsResponse,
  GetFileMetaResponse,
  GetFileNodesResponse,
  GetFileResponse,
  GetFileStylesResponse,
  GetImageFillsResponse,
  GetImagesResponse,
  GetLocalVariablesResponse,
  GetProjectFilesResponse,
  GetTeamProjectsResponse,
} from '@figma/rest-api-spec';
import { FleetError } from '../../../protocol/errors.js';
import { abortReason, sleep, throwIfAborted } from '../core/abort.js';
import { DEFAULT_ENDPOINT_TIERS, type Endpoint, type FigmaOptions } from '../options.js';
import { fleetErrorFromResponse, redact } from './figma-errors.js';
import { LruCache } from './lru-cache.js';
import { TierRateLimiter } from './rate-limiter.js';
import { SingleFlight } from './single-flight.js';

export interface CallOptions {
  signal: AbortSignal;
  /** Absolute deadline, epoch ms. */
  deadline: number;
}

export interface FigmaClientDeps {
  fetch?: typeof fetch;
  now?: () => number;
  random?: () => number;
  logger?: Logger;
}

export interface FigmaClientStats {
  requests: number;
  retries: number;
  rateLimited: number;
  cacheHits: number;
  cacheMisses: number;
  singleFlightJoins: number;
  errors: number;
}

export type ImageFormat = 'png' | 'jpg' | 'svg' | 'pdf';

export type LocalVariablesResult =
  | { available: true; meta: GetLocalVariablesResponse['meta'] }
  | { available: false; reason: string; code: string };

interface Sent {
  body: unknown;
  size: number;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

export class FigmaClient {
  private readonly fetchImpl: typeof fetch;
  private readonly now: () => number;
  private readonly random: () => number;
  private logger: Logger | undefined;
  private readonly base: string;
  private readonly baseIsLoopback: boolean;
  private readonly limiter: TierRateLimiter;
  private readonly cache: LruCache<unknown>;
  private readonly flights = new SingleFlight();
  private readonly versions = new Map<string, { version: string; at: number }>();
  private readonly tiers: Record<Endpoint, string>;
  readonly stats: FigmaClientStats = {
    requests: 0,
    retries: 0,
    rateLimited: 0,
    cacheHits: 0,
    cacheMisses: 0,
    singleFlightJoins: 0,
    errors: 0,
  };

  constructor(
    private readonly options: FigmaOptions,
    deps: FigmaClientDeps = {},
  ) {
    this.fetchImpl = deps.fetch ?? fetch;
    this.now = deps.now ?? Date.now;
    this.random = deps.random ?? Math.random;
    this.logger = deps.logger;
    this.base = options.base_url.replace(/\/+$/, '');
    this.baseIsLoopback = LOOPBACK.has(new URL(this.base).hostname);
    this.limiter = new TierRateLimiter(options.rate_limits, this.now);
    this.cache = new LruCache(options.cache.max_entries, options.cache.max_bytes, this.now);
    this.tiers = { ...DEFAULT_ENDPOINT_TIERS, ...options.endpoint_tiers };
  }

  /** Where retries, 429 waits and network failures are reported (the worker hands its logger over at start). */
  useLogger(logger: Logger): void {
    this.logger = logger;
  }

  get configured(): boolean {
    return this.options.api_token !== undefined;
  }

  get defaultTeamId(): string | undefined {
    return this.options.team_id;
  }

  get maxIdsPerRequest(): number {
    return this.options.max_ids_per_request;
  }

  /** Cache and flight counters for /health and /metrics (no secrets). */
  snapshot(): Record<string, unknown> {
    return {
      ...this.stats,
      singleFlightJoins: this.flights.joins,
      cacheEntries: this.cache.size,
      cacheBytes: this.cache.byteSize,
      inFlight: this.flights.inFlight,
      rateBudget: this.limiter.snapshot(),
    };
  }

  clearCache(): void {
    this.cache.clear();
    this.versions.clear();
  }

  // ---- endpoints ---------------------------------------------------------------------------------------

  getFile(
    fileKey: string,
    q: { ids?: string[]; depth?: number; geometry?: boolean },
    call: CallOptions,
  ): Promise<GetFileResponse> {
    const query = new URLSearchParams();
    if (q.ids?.length) query.set('ids', q.ids.join(','));
    if (q.depth !== undefined) query.set('depth', String(q.depth));
    if (q.geometry) query.set('geometry', 'paths');
    return this.fileScoped<GetFileResponse>('file', fileKey, `/v1/files/${enc(fileKey)}`, query, call);
  }

  /**
   * Nodes by id, batched: ids are split into requests of at most `max_ids_per_request`, a batch Figma
   * calls too large is halved and retried, and the answers are merged. Unknown ids come back as `null`.
   */
  async getFileNodes(
    fileKey: string,
    ids: string[],
    q: { depth?: number; geometry?: boolean },
    call: CallOptions,
  ): Promise<GetFileNodesResponse> {
    if (ids.length === 0) throw new FleetError('invalid_payload', 'no node ids given');
    const batches = chunk(ids, this.options.max_ids_per_request);
    const parts = await Promise.all(batches.map((b) => this.fileNodesBatch(fileKey, b, q, call)));
    const first = parts[0]!;
    // One batch: hand out the cached object itself, so callers can memoise work per answer.
    if (parts.length === 1) return first;
    const nodes: Record<string, GetFileNodesResponse['nodes'][string] | null> = {};
    for (const p of parts) Object.assign(nodes, p.nodes);
    return { ...first, nodes: nodes as GetFileNodesResponse['nodes'] };
  }

  private async fileNodesBatch(
    fileKey: string,
    ids: string[],
    q: { depth?: number; geometry?: boolean },
    call: CallOptions,
  ): Promise<GetFileNodesResponse> {
    const query = new URLSearchParams({ ids: ids.join(',') });
    if (q.depth !== undefined) query.set('depth', String(q.depth));
    if (q.geometry) query.set('geometry', 'paths');
    try {
      return await this.fileScoped<GetFileNodesResponse>(
        'file_nodes',
        fileKey,
        `/v1/files/${enc(fileKey)}/nodes`,
        query,
        call,
      );
    } catch (err) {
      if (isTooLarge(err) && ids.length > 1) {
        const half = Math.ceil(ids.length / 2);
        const [a, b] = await Promise.all([
          this.fileNodesBatch(fileKey, ids.slice(0, half), q, call),
          this.fileNodesBatch(fileKey, ids.slice(half), q, call),
        ]);
        return { ...a, nodes: { ...a.nodes, ...b.nodes } };
      }
      throw err;
    }
  }

  /** Render URLs per node id; `null` means Figma could not render that node. */
  async getImages(
    fileKey: string,
    ids: string[],
    q: { format: ImageFormat; scale: number },
    call: CallOptions,
  ): Promise<Record<string, string | null>> {
    const out: Record<string, string | null> = {};
    const one = async (batch: string[]): Promise<void> => {
      const query = new URLSearchParams({ ids: batch.join(','), format: q.format });
      if (q.format !== 'svg' && q.format !== 'pdf') query.set('scale', String(q.scale));
      try {
        const res = await this.fileScoped<GetImagesResponse>(
          'images',
          fileKey,
          `/v1/images/${enc(fileKey)}`,
          query,
          call,
        );
        Object.assign(out, res.images);
      } catch (err) {
        if (isTooLarge(err) && batch.length > 1) {
          const half = Math.ceil(batch.length / 2);
          await Promise.all([one(batch.slice(0, half)), one(batch.slice(half))]);
          return;
        }
        throw err;
      }
    };
    await Promise.all(chunk(ids, this.options.max_ids_per_request).map(one));
    return out;
  }

  async getImageFills(fileKey: string, call: CallOptions): Promise<Record<string, string>> {
    const res = await this.fileScoped<GetImageFillsResponse>(
      'image_fills',
      fileKey,
      `/v1/files/${enc(fileKey)}/images`,
      new URLSearchParams(),
      call,
    );
    return res.meta.images;
  }

  getFileMeta(fileKey: string, call: CallOptions): Promise<GetFileMetaResponse> {
    return this.getUnversioned<GetFileMetaResponse>(
      'file_meta',
      `/v1/files/${enc(fileKey)}/meta`,
      new URLSearchParams(),
      call,
      0,
    );
  }

  getTeamProjects(teamId: string, call: CallOptions): Promise<GetTeamProjectsResponse> {
    return this.getUnversioned(
      'team_projects',
      `/v1/teams/${enc(teamId)}/projects`,
      new URLSearchParams(),
      call,
      this.options.cache.ttl,
    );
  }

  getProjectFiles(projectId: string, call: CallOptions): Promise<GetProjectFilesResponse> {
    return this.getUnversioned(
      'project_files',
      `/v1/projects/${enc(projectId)}/files`,
      new URLSearchParams(),
      call,
      this.options.cache.ttl,
    );
  }

  getFileComponents(fileKey: string, call: CallOptions): Promise<GetFileComponentsResponse> {
    return this.fileScoped(
      'file_components',
      fileKey,
      `/v1/files/${enc(fileKey)}/components`,
      new URLSearchParams(),
      call,
    );
  }

  getFileStyles(fileKey: string, call: CallOptions): Promise<GetFileStylesResponse> {
    return this.fileScoped(
      'file_styles',
      fileKey,
      `/v1/files/${enc(fileKey)}/styles`,
      new URLSearchParams(),
      call,
    );
  }

  /** Variables are Enterprise-only: a 403 is an expected answer, reported as `available: false`. */
  async getLocalVariables(fileKey: string, call: CallOptions): Promise<LocalVariablesResult> {
    try {
      const res = await this.fileScoped<GetLocalVariablesResponse>(
        'local_variables',
        fileKey,
        `/v1/files/${enc(fileKey)}/variables/local`,
        new URLSearchParams(),
        call,
      );
      return { available: true, meta: res.meta };
    } catch (err) {
      if (err instanceof FleetError && err.code === 'figma_forbidden') {
        return {
          available: false,
          code: err.code,
          reason: 'the Variables REST API needs a Figma Enterprise plan and the file_variables:read scope',
        };
      }
      throw err;
    }
  }

  /**
   * Downloads bytes from a URL Figma handed out (renders, image fills). No token goes with it: these URLs
   * are pre-signed and live on another host. Plain http is accepted only on loopback when the API base is
   * loopback too (the fake); everything else must be https.
   */
  async download(
    url: string,
    call: CallOptions,
    maxBytes: number,
  ): Promise<{ data: Buffer; contentType: string }> {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new FleetError('figma_upstream', 'Figma returned an asset URL that does not parse');
    }
    const loopbackOk = this.baseIsLoopback && parsed.protocol === 'http:' && LOOPBACK.has(parsed.hostname);
    if (parsed.protocol !== 'https:' && !loopbackOk) {
      throw new FleetError(
        'figma_upstream',
        `refusing to download an asset over ${parsed.protocol} from ${parsed.host}`,
      );
    }
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(call.signal);
      let res: Response;
      try {
        res = await this.fetchImpl(parsed, { signal: this.requestSignal(call), redirect: 'follow' });
      } catch (err) {
        this.throwIfOver(call);
        if (await this.backoff(attempt, call)) continue;
        throw new FleetError('figma_upstream', `the asset download failed: ${(err as Error).message}`);
      }
      if (res.status >= 500 && (await this.backoff(attempt, call))) continue;
      if (!res.ok) {
        throw new FleetError(
          res.status >= 500 ? 'figma_upstream' : 'figma_not_found',
          `the asset download answered HTTP ${res.status}`,
          {
            details: { status: res.status },
          },
        );
      }
      const declared = Number(res.headers.get('content-length') ?? '0');
      if (declared > maxBytes)
        throw new FleetError(
          'payload_too_large',
          `an asset is ${declared} bytes, over the ${maxBytes}-byte cap`,
        );
      const data = Buffer.from(await res.arrayBuffer());
      if (data.length > maxBytes)
        throw new FleetError(
          'payload_too_large',
          `an asset is ${data.length} bytes, over the ${maxBytes}-byte cap`,
        );
      return {
        data,
        contentType: res.headers.get('content-type')?.split(';')[0]?.trim() || 'application/octet-stream',
      };
    }
  }

  // ---- caching -----------------------------------------------------------------------------------------

  /** The version the cache keys a file's answers on; refreshed through the meta endpoint after `version_ttl`. */
  async fileVersion(fileKey: string, call: CallOptions): Promise<string> {
    const known = this.versions.get(fileKey);
    if (known && this.now() - known.at < this.options.cache.version_ttl) return known.version;
    let version: string;
    try {
      const meta = await this.getFileMeta(fileKey, call);
      version = meta.file.version ?? `touched:${meta.file.last_touched_at}`;
    } catch (err) {
      // Tokens without the metadata scope cannot read meta; fall back to a time bucket so caching still
      // bounds staleness to one window.
      if (err instanceof FleetError && err.code === 'figma_forbidden') {
        version = `window:${Math.floor(this.now() / Math.max(1, this.options.cache.version_ttl))}`;
      } else throw err;
    }
    this.versions.set(fileKey, { version, at: this.now() });
    return version;
  }

  private async fileScoped<T>(
    endpoint: Endpoint,
    fileKey: string,
    path: string,
    query: URLSearchParams,
    call: CallOptions,
  ): Promise<T> {
    this.requireToken();
    const key = `${path}?${query.toString()}`;
    if (!this.versions.has(fileKey) && (endpoint === 'file' || endpoint === 'file_nodes')) {
      // Cold: these answers carry the version themselves, so asking meta first would only add a round trip.
      this.stats.cacheMisses++;
      const sent = await this.flights.run(`${key}#cold`, call.signal, (signal) =>
        this.send(endpoint, path, query, { signal, deadline: call.deadline }),
      );
      const v = (sent.body as { version?: unknown }).version;
      if (typeof v === 'string') {
        this.versions.set(fileKey, { version: v, at: this.now() });
        this.cache.set(`${key}#${v}`, sent.body, sent.size);
      }
      return sent.body as T;
    }
    const version = await this.fileVersion(fileKey, call);
    const cached = this.cache.get(`${key}#${version}`);
    if (cached !== undefined) {
      this.stats.cacheHits++;
      return cached as T;
    }
    this.stats.cacheMisses++;
    const sent = await this.flights.run(`${key}#${version}`, call.signal, (signal) =>
      this.send(endpoint, path, query, { signal, deadline: call.deadline }),
    );
    const body = sent.body as { version?: unknown };
    let storeVersion = version;
    if (typeof body.version === 'string' && body.version !== version && !version.startsWith('window:')) {
      // The file changed since the version was learned: this answer is the newer truth.
      storeVersion = body.version;
      this.versions.set(fileKey, { version: body.version, at: this.now() });
    }
    this.cache.set(`${key}#${storeVersion}`, sent.body, sent.size);
    return sent.body as T;
  }

  private async getUnversioned<T>(
    endpoint: Endpoint,
    path: string,
    query: URLSearchParams,
    call: CallOptions,
    ttlMs: number,
  ): Promise<T> {
    this.requireToken();
    const key = `${path}?${query.toString()}`;
    if (ttlMs > 0) {
      const cached = this.cache.get(key);
      if (cached !== undefined) {
        this.stats.cacheHits++;
        return cached as T;
      }
      this.stats.cacheMisses++;
    }
    const sent = await this.flights.run(key, call.signal, (signal) =>
      this.send(endpoint, path, query, { signal, deadline: call.deadline }),
    );
    if (ttlMs > 0) this.cache.set(key, sent.body, sent.size, ttlMs);
    return sent.body as T;
  }

  // ---- HTTP --------------------------------------------------------------------------------------------

  private requireToken(): string {
    const token = this.options.api_token;
    if (!token) {
      throw new FleetError(
        'figma_not_configured',
        'no Figma token is configured: set FIGMA_API_TOKEN or figma_mcp.figma_config.api_token',
      );
    }
    return token;
  }

  /**
   * After a failed fetch: the caller's cancel, or the deadline. The per-request timer is bounded by the
   * deadline and may fire a moment before the deadline's own timer; that is a timeout, not a network error.
   */
  private throwIfOver(call: CallOptions): void {
    if (call.signal.aborted) throw abortReason(call.signal);
    if (this.now() >= call.deadline - 5) throw new FleetError('timeout', 'the call ran past its deadline');
  }

  private authHeader(token: string): Record<string, string> {
    return this.options.auth === 'oauth' ? { authorization: `Bearer ${token}` } : { 'X-Figma-Token': token };
  }

  private requestSignal(call: CallOptions): AbortSignal {
    const remaining = Math.max(1, Math.min(this.options.request_timeout, call.deadline - this.now()));
    return AbortSignal.any([call.signal, AbortSignal.timeout(remaining)]);
  }

  /**
   * One request with the client's own retries. Its error carries `details.upstreamAttempts` (the HTTP tries
   * spent), so the manager counts them against the task's one retry budget instead of multiplying them by
   * its own attempts (retry-policy.ts).
   */
  private async send(
    endpoint: Endpoint,
    path: string,
    query: URLSearchParams,
    call: CallOptions,
  ): Promise<Sent> {
    const tries = { n: 0 };
    try {
      return await this.sendWithRetries(endpoint, path, query, call, tries);
    } catch (err) {
      throw withUpstreamAttempts(err, tries.n);
    }
  }

  private async sendWithRetries(
    endpoint: Endpoint,
    path: string,
    query: URLSearchParams,
    call: CallOptions,
    tries: { n: number },
  ): Promise<Sent> {
    const token = this.requireToken();
    const tier = this.tiers[endpoint];
    const qs = query.toString();
    const url = `${this.base}${path}${qs ? `?${qs}` : ''}`;
    for (let attempt = 1; ; attempt++) {
      throwIfAborted(call.signal);
      await this.limiter.take(tier, call.signal, call.deadline);
      const started = this.now();
      let res: Response;
      tries.n++;
      try {
        res = await this.fetchImpl(url, {
          headers: { ...this.authHeader(token), accept: 'application/json' },
          signal: this.requestSignal(call),
          // A custom header survives a cross-origin redirect in fetch: never follow one with the token.
          redirect: 'manual',
        });
      } catch (err) {
        this.throwIfOver(call);
        const reason = redact((err as Error).message, token);
        this.logger?.warn({ endpoint, attempt, err: reason }, 'figma request failed');
        if (await this.backoff(attempt, call)) continue;
        this.stats.errors++;
        this.logger?.error({ endpoint, attempts: attempt, err: reason }, 'figma unreachable: giving up');
        throw new FleetError('figma_upstream', `Figma could not be reached on ${endpoint}: ${reason}`, {
          details: { endpoint, attempts: attempt },
        });
      }
      this.stats.requests++;
      if (res.status >= 300 && res.status < 400) {
        this.stats.errors++;
        await res.body?.cancel().catch(() => undefined);
        const to = res.headers.get('location') ?? '?';
        this.logger?.warn({ endpoint, status: res.status }, 'figma answered a redirect: not followed');
        throw new FleetError(
          'figma_upstream',
          `Figma answered ${endpoint} with a redirect (HTTP ${res.status} to ${redact(to, token).slice(0, 200)}); the token goes to the configured base URL only, so it is not followed`,
          { details: { endpoint, status: res.status } },
        );
      }
      let text: string;
      try {
        text = await res.text();
      } catch (err) {
        this.throwIfOver(call);
        if (await this.backoff(attempt, call)) continue;
        throw new FleetError(
          'figma_upstream',
          `Figma's answer on ${endpoint} broke off: ${redact((err as Error).message, token)}`,
        );
      }
      this.logger?.debug(
        { endpoint, status: res.status, ms: this.now() - started, attempt },
        'figma request',
      );
      const body = parseJson(text);
      if (res.ok) {
        if (body === undefined)
          throw new FleetError(
            'figma_upstream',
            `Figma answered ${endpoint} with something that is not JSON`,
          );
        return { body, size: text.length };
      }
      if (res.status === 429) {
        this.stats.rateLimited++;
        const retryAfter = parseRetryAfter(res.headers.get('retry-after'), this.now());
        const details = {
          endpoint,
          tier,
          retryAfter,
          planTier: res.headers.get('x-figma-plan-tier'),
          limitType: res.headers.get('x-figma-rate-limit-type'),
          upgradeLink: res.headers.get('x-figma-upgrade-link'),
        };
        const waitMs = (retryAfter ?? 1) * 1000;
        if (attempt < this.options.retry.max_attempts && this.now() + waitMs < call.deadline) {
          this.stats.retries++;
          this.logger?.info({ endpoint, retryAfter }, 'figma rate limit: waiting as Retry-After asks');
          await sleep(waitMs, call.signal);
          continue;
        }
        this.stats.errors++;
        this.logger?.warn(
          { endpoint, tier, retryAfter },
          'figma rate limit: Retry-After does not fit the deadline',
        );
        throw new FleetError(
          'figma_rate_limited',
          `Figma's ${details.limitType ?? ''} rate limit on ${endpoint} (${tier}) was hit; retry after ${retryAfter ?? '?'} s`.replace(
            '  ',
            ' ',
          ),
          { details },
        );
      }
      if (res.status >= 500) {
        this.logger?.warn({ endpoint, status: res.status, attempt }, 'figma answered a server error');
        if (await this.backoff(attempt, call)) continue;
      }
      this.stats.errors++;
      const error = fleetErrorFromResponse({
        status: res.status,
        body,
        endpoint,
        token,
        auth: this.options.auth,
      });
      this.logger?.warn({ endpoint, status: res.status, code: error.code }, 'figma request refused');
      throw error;
    }
  }

  /** Sleeps a jittered exponential delay and says whether to try again (attempts left and the deadline allows). */
  private async backoff(attempt: number, call: CallOptions): Promise<boolean> {
    const r = this.options.retry;
    if (attempt >= r.max_attempts) return false;
    const ceiling = Math.min(r.max_delay, r.base_delay * 2 ** (attempt - 1));
    const delay = Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
    if (this.now() + delay >= call.deadline) return false;
    this.stats.retries++;
    this.logger?.info({ attempt, delayMs: delay }, 'figma request: retrying after a backoff');
    await sleep(delay, call.signal);
    return true;
  }
}

function withUpstreamAttempts(err: unknown, tries: number): unknown {
  if (!(err instanceof FleetError) || tries === 0) return err;
  return new FleetError(err.code, err.message, {
    retryable: err.retryable,
    details: { ...err.details, upstreamAttempts: tries },
    cause: err.cause,
  });
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

function chunk<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isTooLarge(err: unknown): boolean {
  return err instanceof FleetError && err.code === 'figma_bad_request' && /too large/i.test(err.message);
}

/** `Retry-After` in seconds or as an HTTP date; seconds rounded up. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (!value) return undefined;
  const n = Number(value);
  if (Number.isFinite(n) && n >= 0) return Math.ceil(n);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, Math.ceil((at - now) / 1000));
}
