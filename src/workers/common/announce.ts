/**
 * Self-announcement (docs/architecture.md: Discovery): a worker started with `--manager URL` tells the manager where to dial it,
 * at start and then periodically, so a manager that restarted (or a second manager) finds it again without
 * any shared state. The manager does the dialling; this is only a hint, so failures are logged at debug
 * and simply retried on the next tick.
 */
import type { Logger } from 'pino';
import { FleetError } from '../../protocol/errors.js';

export interface AnnouncementBody {
  endpoint: string;
  workerType: string;
  workerId: string;
}

export interface AnnouncerOptions {
  managerUrl: string;
  token?: string;
  body: () => AnnouncementBody;
  logger: Logger;
  /** @default 10_000 */
  intervalMs?: number;
  /** @default 5_000 */
  requestTimeoutMs?: number;
}

export const DEFAULT_ANNOUNCE_INTERVAL_MS = 10_000;

export class Announcer {
  private readonly url: string;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: AbortController | undefined;

  constructor(private readonly options: AnnouncerOptions) {
    let base: URL;
    try {
      base = new URL(options.managerUrl);
    } catch {
      throw new FleetError('config_invalid', `manager URL "${options.managerUrl}" is not a URL`);
    }
    if (base.protocol !== 'http:' && base.protocol !== 'https:') {
      throw new FleetError(
        'config_invalid',
        `manager URL "${options.managerUrl}" must be http:// or https://`,
      );
    }
    this.url = `${base.href.replace(/\/+$/, '')}/api/workers`;
  }

  start(): void {
    if (this.timer) return;
    void this.announce();
    this.timer = setInterval(
      () => void this.announce(),
      this.options.intervalMs ?? DEFAULT_ANNOUNCE_INTERVAL_MS,
    );
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.inFlight?.abort();
  }

  /** One announcement; resolves true when the manager accepted it (2xx). Never throws. */
  async announce(): Promise<boolean> {
    if (this.inFlight) return false; // the previous attempt is still waiting; don't pile up requests
    const controller = new AbortController();
    this.inFlight = controller;
    const timeout = setTimeout(() => controller.abort(), this.options.requestTimeoutMs ?? 5_000);
    timeout.unref();
    try {
      const res = await fetch(this.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}),
        },
        body: JSON.stringify(this.options.body()),
        signal: controller.signal,
      });
      await res.body?.cancel();
      if (!res.ok) {
        this.options.logger.debug(
          { url: this.url, status: res.status },
          'announcement refused by the manager',
        );
        return false;
      }
      return true;
    } catch (err) {
      this.options.logger.debug(
        { url: this.url, err: (err as Error).message },
        'announcement failed; will retry',
      );
      return false;
    } finally {
      clearTimeout(timeout);
      this.inFlight = undefined;
    }
  }
}
