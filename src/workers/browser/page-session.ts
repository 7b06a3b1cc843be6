/**
 * One task's time in a browser: an instance from the pool, a proxy of its own, a fresh context and page, and
 * the guarantees around them:
 *  - every Playwright call is bounded by the task's deadline (the page's default timeouts are the time left);
 *  - a timeout, a cancel or a crash ends the task at once (the handler's promise is raced against them), then
 *    the context is closed; if that does not finish in time the browser is restarted (its process group killed);
 *  - whatever the handler did, the context and the proxy are gone when the task ends, so nothing of one task is
 *    seen by the next (cookies, storage, cache, sockets).
 */
import type { BrowserContext, Page, Response } from 'playwright-core';
import { FleetError, toFleetError } from '../../protocol/errors.js';
import type { TaskContext } from '../common/worker-kind.js';
import type { BrowserManager, ChromeInstance } from './browser-pool.js';
import { CLOSED_RE, PAGE_CRASH_RE, pageCrashedError, pageUnresponsiveError, watchPage } from './crash.js';
import { DownloadCollector, downloadLimit, type DownloadsOption } from './downloads.js';
import type { BrowserLimits } from './options.js';
import { BLOCKED_HEADER, CONTENT_URL, PolicyProxy, type BlockedRequest } from './policy-proxy.js';
import { installTransportReporter, type TransportReporter } from './transport-guard.js';
import { isAllowedFrameUrl, truncate, type UrlPolicy } from './url-policy.js';

export interface BrowserKindDeps {
  pool: BrowserManager;
  policy: UrlPolicy;
  limits: BrowserLimits;
  defaultViewport: { width: number; height: number };
  closeTimeoutMs: number;
  /** A page whose main thread does not answer this long is `page_unresponsive`. */
  unresponsiveMs: number;
}

export interface ContextOptions {
  viewport?: { width: number; height: number } | undefined;
  deviceScaleFactor?: number | undefined;
  userAgent?: string | undefined;
  locale?: string | undefined;
  timezoneId?: string | undefined;
  javaScriptEnabled?: boolean | undefined;
  extraHTTPHeaders?: Record<string, string> | undefined;
  /** Absent or `accept: false`: downloads are denied and reported as refused. */
  downloads?: DownloadsOption | undefined;
  colorScheme?: 'light' | 'dark' | undefined;
  /** The caller accepts a retry when its own page crashes or hangs (`page_crashed`/`page_unresponsive`). */
  retryPageFailures?: boolean | undefined;
}

export interface NavigationRecord {
  url: string;
  status: number;
}

export class PageSession {
  readonly consoleMessages: Array<{ type: string; text: string }> = [];
  readonly pageErrors: string[] = [];
  readonly schemeBlocked: BlockedRequest[] = [];
  /** The last main-frame document response (after redirects and form submits). */
  lastNavigation: NavigationRecord | undefined;
  readonly downloads: DownloadCollector;
  private violation: FleetError | undefined;
  /** Reads the transport reporter's console messages (set before the page loads anything). */
  transportReporter: TransportReporter | undefined;
  /** Set when this task's own page crashed or hung: every later failure is reported as that. */
  pageFailure: FleetError | undefined;

  constructor(
    readonly page: Page,
    readonly context: BrowserContext,
    readonly proxy: PolicyProxy,
    readonly instance: ChromeInstance,
    readonly deps: BrowserKindDeps,
    readonly signal: AbortSignal,
    readonly deadline: number,
    private readonly onViolation: (err: FleetError) => void,
    downloads: DownloadsOption | undefined = undefined,
    readonly retryPageFailures = false,
    /** The context's device scale factor (screenshots are capped in device pixels). */
    readonly deviceScaleFactor = 1,
  ) {
    this.downloads = new DownloadCollector(
      downloads?.accept ?? false,
      downloadLimit(deps.limits.max_download_bytes, downloads),
      proxy,
      (err) => {
        this.violation ??= err;
        this.onViolation(err);
      },
      (url, message) => this.schemeBlocked.push({ url: truncate(url), reason: 'download', message }),
    );
    this.downloads.attach(page);
    page.on('console', (msg) => {
      const text = msg.text();
      if (this.transportReporter?.read(text, this.schemeBlocked)) return;
      if (this.consoleMessages.length < 500)
        this.consoleMessages.push({ type: msg.type(), text: truncate(text, 2000) });
      // Chromium's own refusal of file:/chrome: loads from a web page; the policy reports it like its own.
      const local = /Not allowed to load local resource: (\S+)/.exec(text);
      if (local)
        this.schemeBlocked.push({
          url: truncate(local[1]!),
          reason: 'scheme',
          message: 'local resource refused',
        });
    });
    page.on('pageerror', (err) => {
      if (this.pageErrors.length < 200) this.pageErrors.push(truncate(err.message, 2000));
    });
    page.on('response', (resp) => {
      if (resp.frame() === page.mainFrame() && resp.request().isNavigationRequest()) {
        this.lastNavigation = { url: resp.url(), status: resp.status() };
      }
    });
    page.on('framenavigated', (frame) => {
      const url = frame.url();
      if (isAllowedFrameUrl(url, frame === page.mainFrame())) return;
      const err = new FleetError('url_blocked', `a frame navigated to a refused URL: ${truncate(url)}`, {
        details: { url: truncate(url), reason: 'scheme' },
      });
      this.schemeBlocked.push({ url: truncate(url), reason: 'scheme', message: 'frame navigation refused' });
      this.violation = err;
      this.onViolation(err);
    });
  }

  /** Records (once) and returns this task's page crash. */
  crashed(): FleetError {
    this.pageFailure ??= pageCrashedError(this.retryPageFailures, this.deps.pool.crashDetails(this.instance));
    return this.pageFailure;
  }

  /** Milliseconds left before the task's deadline (at least 1). */
  remaining(): number {
    return Math.max(1, this.deadline - Date.now());
  }

  /** A timeout for one call: the given cap, never past the deadline. */
  timeout(capMs?: number): number {
    const left = this.remaining();
    return capMs === undefined ? left : Math.max(1, Math.min(capMs, left));
  }

  blocked(): BlockedRequest[] {
    return [...this.proxy.blocked, ...this.schemeBlocked];
  }

  throwIfViolated(): void {
    if (this.violation) throw this.violation;
  }

  /**
   * Opens a URL (checked by the policy first) or raw HTML (served from the task's proxy), then waits as asked.
   * A hop refused by the proxy, or an error status (unless `allowErrorStatus`), fails the task.
   */
  async open(
    target: { url?: string | undefined; html?: string | undefined },
    wait: WaitOptions = {},
  ): Promise<{ status: number | undefined; finalUrl: string; redirects: string[] }> {
    let url: string;
    if (target.html !== undefined) {
      if (Buffer.byteLength(target.html) > this.deps.limits.max_html_bytes) {
        throw new FleetError('payload_too_large', `html is over ${this.deps.limits.max_html_bytes} bytes`);
      }
      this.proxy.setContent(target.html);
      url = CONTENT_URL;
    } else if (target.url !== undefined) {
      url = (await this.deps.policy.assertNavigable(target.url)).href;
    } else {
      throw new FleetError('invalid_payload', 'url or html is required');
    }
    const response = await this.goto(url, wait.waitUntil ?? 'load', wait.allowErrorStatus ?? false);
    await this.waitFor(wait);
    const redirects: string[] = [];
    for (let r = response?.request().redirectedFrom(); r; r = r.redirectedFrom()) redirects.unshift(r.url());
    return { status: response?.status(), finalUrl: this.page.url(), redirects };
  }

  async goto(url: string, waitUntil: WaitUntil, allowErrorStatus: boolean): Promise<Response | null> {
    let response: Response | null;
    const downloadsBefore = this.downloads.count;
    try {
      response = await this.page.goto(url, { waitUntil, timeout: this.timeout() });
    } catch (err) {
      // The URL answered with a file: the page stays where it was and the download collector takes it (its
      // event can trail the navigation's failure).
      if (/Download is starting/.test((err as Error)?.message ?? '')) {
        await this.downloads.waitForMore(downloadsBefore, this.timeout(5000));
        this.throwIfViolated();
        return null;
      }
      throw this.navigationError(err, url);
    }
    this.throwIfViolated();
    if (response) {
      const headers: Record<string, string> = await response.allHeaders().catch(() => ({}));
      const blockedReason = headers[BLOCKED_HEADER];
      if (blockedReason) {
        throw new FleetError(
          'url_blocked',
          `the navigation reached a URL the policy refuses: ${truncate(response.url())}`,
          {
            details: {
              url: truncate(response.url()),
              reason: blockedReason,
              blocked: this.blocked().slice(0, 20),
            },
          },
        );
      }
      const status = response.status();
      if (status >= 400 && !allowErrorStatus) {
        throw new FleetError('navigation_failed', `${truncate(response.url())} answered HTTP ${status}`, {
          retryable: status >= 500 || status === 429,
          details: { status, url: truncate(response.url()) },
        });
      }
    }
    return response;
  }

  /** Maps a failed navigation to url_blocked (when the proxy refused a hop) or navigation_failed. */
  navigationError(err: unknown, url: string): FleetError {
    if (err instanceof FleetError) return err;
    if (this.pageFailure) return this.pageFailure;
    if (this.violation) return this.violation;
    if (this.signal.aborted) return toFleetError(this.signal.reason);
    const msg = (err as Error)?.message ?? String(err);
    const blocked = this.blocked();
    if (
      blocked.length > 0 &&
      /ERR_TUNNEL_CONNECTION_FAILED|ERR_BLOCKED|ERR_ACCESS_DENIED|ERR_ABORTED|ERR_UNSAFE/.test(msg)
    ) {
      return new FleetError('url_blocked', `navigation refused by the URL policy: ${blocked[0]!.message}`, {
        details: { url: truncate(url), blocked: blocked.slice(0, 20) },
      });
    }
    if ((err as Error)?.name === 'TimeoutError') {
      if (Date.now() >= this.deadline - 5)
        return new FleetError('timeout', `timed out loading ${truncate(url)}`);
      return new FleetError('navigation_failed', `timed out loading ${truncate(url)}`, { retryable: true });
    }
    if (CLOSED_RE.test(msg) || PAGE_CRASH_RE.test(msg)) return this.closedError(err);
    return new FleetError('navigation_failed', `cannot load ${truncate(url)}: ${firstLine(msg)}`, {
      retryable: /ERR_CONNECTION|ERR_NAME|ERR_TIMED_OUT|ERR_EMPTY_RESPONSE|ERR_NETWORK/.test(msg),
    });
  }

  closedError(err: unknown): FleetError {
    if (this.pageFailure) return this.pageFailure;
    if (this.signal.aborted) return toFleetError(this.signal.reason);
    if (this.instance.crashed.aborted) return toFleetError(this.instance.crashed.reason);
    if (PAGE_CRASH_RE.test(String((err as Error)?.message ?? err))) return this.crashed();
    return new FleetError(
      'browser_crashed',
      `the page or browser closed under the task: ${firstLine(String((err as Error)?.message ?? err))}`,
      {
        retryable: true,
      },
    );
  }

  async waitFor(wait: WaitOptions): Promise<void> {
    if (wait.waitForSelector) {
      try {
        await this.page.waitForSelector(wait.waitForSelector, {
          state: 'visible',
          timeout: this.timeout(wait.selectorTimeoutMs),
        });
      } catch (err) {
        throw this.selectorError(err, wait.waitForSelector);
      }
    }
    if (wait.waitForNetworkIdle)
      await this.page
        .waitForLoadState('networkidle', { timeout: this.timeout() })
        .catch((e) => this.rethrowUnlessTimeout(e));
    if (wait.waitForFunction) {
      try {
        await this.page.waitForFunction(wait.waitForFunction, undefined, {
          timeout: this.timeout(wait.selectorTimeoutMs),
        });
      } catch (err) {
        throw this.scriptError(err);
      }
    }
    if (wait.delayMs) await this.page.waitForTimeout(Math.min(wait.delayMs, this.remaining()));
    this.throwIfViolated();
  }

  private rethrowUnlessTimeout(err: unknown): void {
    if ((err as Error)?.name === 'TimeoutError' && Date.now() < this.deadline - 5) return;
    throw this.classify(err);
  }

  selectorError(err: unknown, selector: string): FleetError {
    if (err instanceof FleetError) return err;
    if ((err as Error)?.name === 'TimeoutError') {
      if (Date.now() >= this.deadline - 5)
        return new FleetError('timeout', `timed out waiting for ${truncate(selector)}`);
      return new FleetError('selector_not_found', `no element matches ${truncate(selector)} in time`, {
        details: { selector: truncate(selector) },
      });
    }
    return this.classify(err, 'selector_not_found');
  }

  scriptError(err: unknown): FleetError {
    if (err instanceof FleetError) return err;
    const msg = String((err as Error)?.message ?? err);
    if (CLOSED_RE.test(msg) || PAGE_CRASH_RE.test(msg)) return this.closedError(err);
    if ((err as Error)?.name === 'TimeoutError') {
      return Date.now() >= this.deadline - 5
        ? new FleetError('timeout', 'timed out running a script')
        : new FleetError('script_error', 'the script did not finish in time');
    }
    return new FleetError('script_error', `the script threw: ${firstLine(msg.replace(/^page\.\w+: /, ''))}`);
  }

  /** Any Playwright failure → the closest FleetError. */
  classify(
    err: unknown,
    fallback: 'step_failed' | 'selector_not_found' | 'internal' = 'internal',
  ): FleetError {
    if (err instanceof FleetError) return err;
    if (this.pageFailure) return this.pageFailure;
    if (this.violation) return this.violation;
    if (this.signal.aborted) return toFleetError(this.signal.reason);
    const msg = String((err as Error)?.message ?? err);
    if (CLOSED_RE.test(msg) || PAGE_CRASH_RE.test(msg)) return this.closedError(err);
    if ((err as Error)?.name === 'TimeoutError') {
      return Date.now() >= this.deadline - 5
        ? new FleetError('timeout', `the task ran past its deadline: ${firstLine(msg)}`)
        : new FleetError(fallback === 'internal' ? 'step_failed' : fallback, firstLine(msg));
    }
    if (/Unexpected token|is not a valid selector|Unknown engine|SyntaxError.*selector/i.test(msg)) {
      return new FleetError('invalid_payload', `bad selector: ${firstLine(msg)}`);
    }
    return new FleetError(fallback, firstLine(msg));
  }
}

export type WaitUntil = 'load' | 'domcontentloaded' | 'networkidle' | 'commit';

export interface WaitOptions {
  waitUntil?: WaitUntil | undefined;
  waitForSelector?: string | undefined;
  waitForFunction?: string | undefined;
  waitForNetworkIdle?: boolean | undefined;
  delayMs?: number | undefined;
  selectorTimeoutMs?: number | undefined;
  allowErrorStatus?: boolean | undefined;
}

export function firstLine(s: string): string {
  return truncate(s.split('\n')[0] ?? s, 500);
}

/** Runs `fn` with a fresh page; see the module note for the guarantees. */
export async function withPage<T>(
  deps: BrowserKindDeps,
  ctx: TaskContext,
  options: ContextOptions,
  fn: (s: PageSession) => Promise<T>,
): Promise<T> {
  const task = new AbortController();
  const abortWith = (reason: unknown) => {
    if (!task.signal.aborted) task.abort(reason);
  };
  const onCtxAbort = () =>
    abortWith(
      ctx.signal.reason instanceof FleetError
        ? ctx.signal.reason
        : new FleetError('cancelled', 'the task was cancelled'),
    );
  if (ctx.signal.aborted) onCtxAbort();
  ctx.signal.addEventListener('abort', onCtxAbort, { once: true });
  const deadlineTimer = setTimeout(
    () => abortWith(new FleetError('timeout', 'the task ran past its deadline and was stopped')),
    Math.max(0, ctx.deadline - Date.now()),
  );
  deadlineTimer.unref();

  let instance: ChromeInstance | undefined;
  let proxy: PolicyProxy | undefined;
  let context: BrowserContext | undefined;
  let session: PageSession | undefined;
  let watchdog: { stop(): void } | undefined;
  const onCrash = () => abortWith(instance?.crashed.reason);
  try {
    task.signal.throwIfAborted();
    instance = await deps.pool.getAvailableInstance(task.signal);
    instance.crashed.addEventListener('abort', onCrash, { once: true });
    if (instance.crashed.aborted) onCrash();
    proxy = new PolicyProxy(deps.policy, deps.limits.max_response_bytes, false, deps.pool.proxyListener);
    await proxy.listen();
    task.signal.throwIfAborted();
    const viewport = options.viewport ?? deps.defaultViewport;
    context = await raceAbort(
      instance.browser.newContext({
        proxy: { server: proxy.url },
        serviceWorkers: 'block',
        acceptDownloads: options.downloads?.accept ?? false,
        viewport,
        ...(options.deviceScaleFactor !== undefined ? { deviceScaleFactor: options.deviceScaleFactor } : {}),
        ...(options.userAgent !== undefined ? { userAgent: options.userAgent } : {}),
        ...(options.locale !== undefined ? { locale: options.locale } : {}),
        ...(options.timezoneId !== undefined ? { timezoneId: options.timezoneId } : {}),
        ...(options.javaScriptEnabled !== undefined ? { javaScriptEnabled: options.javaScriptEnabled } : {}),
        ...(options.extraHTTPHeaders !== undefined ? { extraHTTPHeaders: options.extraHTTPHeaders } : {}),
        ...(options.colorScheme !== undefined ? { colorScheme: options.colorScheme } : {}),
      }),
      task.signal,
    );
    const reporter = await raceAbort(installTransportReporter(context), task.signal);
    const page = await raceAbort(context.newPage(), task.signal);
    const left = Math.max(1, ctx.deadline - Date.now());
    page.setDefaultTimeout(left);
    page.setDefaultNavigationTimeout(left);
    // Popups share the context (and its proxy); they are closed so a page cannot outlive its task through them.
    context.on('page', (p) => {
      if (p !== page) void p.close().catch(() => undefined);
    });
    session = new PageSession(
      page,
      context,
      proxy,
      instance,
      deps,
      task.signal,
      ctx.deadline,
      (err) => abortWith(err),
      options.downloads,
      options.retryPageFailures ?? false,
      options.deviceScaleFactor ?? 1,
    );
    session.transportReporter = reporter;
    const own = session;
    page.on('crash', () => abortWith(own.crashed()));
    watchdog = watchPage(page, { unresponsiveMs: deps.unresponsiveMs, deadline: ctx.deadline }, (stuck) => {
      own.pageFailure ??= pageUnresponsiveError(options.retryPageFailures ?? false, stuck);
      abortWith(own.pageFailure);
    });
    const work = fn(session);
    work.catch(() => undefined);
    return await raceAbort(work, task.signal);
  } catch (err) {
    if (task.signal.aborted) throw toFleetError(task.signal.reason);
    throw err;
  } finally {
    watchdog?.stop();
    clearTimeout(deadlineTimer);
    ctx.signal.removeEventListener('abort', onCtxAbort);
    instance?.crashed.removeEventListener('abort', onCrash);
    await session?.downloads.cleanup(deps.closeTimeoutMs);
    if (context) await closeContext(deps, instance!, context);
    await proxy?.close();
    if (instance) await deps.pool.releaseInstance(instance);
  }
}

/** Close the context; if it hangs, restart the browser (which kills its process group). */
async function closeContext(
  deps: BrowserKindDeps,
  instance: ChromeInstance,
  context: BrowserContext,
): Promise<void> {
  const closed = context.close().then(
    () => true,
    () => !instance.browser.isConnected(),
  );
  const timedOut = new Promise<boolean>((r) => setTimeout(() => r(false), deps.closeTimeoutMs).unref());
  if (!(await Promise.race([closed, timedOut]))) {
    if (instance.browser.isConnected()) await deps.pool.restartInstance(instance.id);
  }
}

/** Rejects with the signal's reason as soon as it aborts, whatever `p` is doing. */
export function raceAbort<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    p.catch(() => undefined);
    return Promise.reject(toFleetError(signal.reason));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(toFleetError(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}
