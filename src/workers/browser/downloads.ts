/**
 * Downloads of one task. Off unless the payload asks (`options.downloads: { accept: true, maxBytes? }`): the
 * context is then created with `acceptDownloads`, each file is read back as an artifact with its suggested
 * filename, size and sha256, and deleted. Without the option Chromium denies the download (nothing is written)
 * and the attempt is reported as refused.
 *
 * The cap is the smaller of `limits.max_download_bytes` and the payload's `maxBytes`. It is held in the policy
 * proxy while the bytes flow (plain http) and checked again on the finished file (https arrives through a tunnel
 * the proxy cannot read; there the per-tunnel response cap bounds the disk). Over the cap, the download is
 * cancelled, its file deleted, and the task fails with `payload_too_large` (details: limit, url, filename).
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { Download, Page } from 'playwright-core';
import { z } from 'zod';
import { FleetError } from '../../protocol/errors.js';
import type { Artifact } from '../common/worker-kind.js';
import type { PolicyProxy } from './policy-proxy.js';
import { truncate } from './url-policy.js';

export const DownloadsOptionSchema = z
  .object({
    /** Let the page download files; each comes back as an artifact. */
    accept: z.boolean(),
    /** A smaller cap than the worker's `max_download_bytes` for this task. */
    maxBytes: z.number().int().positive().optional(),
  })
  .strict();

export type DownloadsOption = z.output<typeof DownloadsOptionSchema>;

/** More downloads than this in one task are refused: each is held in memory until the task returns. */
export const MAX_DOWNLOADS_PER_TASK = 20;

export const DOWNLOADS_OFF = 'downloads are off';

const CUT_NAME_WAIT_MS = 500;
const SETTLE_QUIET_MS = 100;
const SETTLE_MAX_MS = 1000;

export interface DownloadReport {
  url: string;
  suggestedFilename: string;
  /** The artifact's name (set when the file was returned). */
  artifact?: string;
  contentType?: string;
  bytes?: number;
  sha256?: string;
  /** Why the download was not attempted (`downloads are off`, `too many downloads`). */
  refused?: string;
  /** Chromium's reason when the download started but did not finish (network error, cancelled). */
  failed?: string;
}

export interface DownloadResult {
  downloads: DownloadReport[];
  artifacts: Artifact[];
}

/** The cap for a task: the worker's limit, or the payload's when smaller. */
export function downloadLimit(maxDownloadBytes: number, option: DownloadsOption | undefined): number {
  return Math.min(maxDownloadBytes, option?.maxBytes ?? Number.POSITIVE_INFINITY);
}

/** A suggested filename made safe as an artifact name (no paths, no leading dots, bounded). */
export function artifactNameOf(suggested: string): string {
  const base = suggested.split(/[\\/]/).pop() ?? '';
  const safe = base
    .replace(/[^\w.-]+/g, '_')
    .replace(/^[.]+/, '')
    .slice(-120);
  return safe || 'download';
}

export class DownloadCollector {
  private readonly reports: DownloadReport[] = [];
  private readonly artifacts: Artifact[] = [];
  private readonly pending = new Set<Promise<void>>();
  private readonly live = new Map<Download, string>();
  private readonly names = new Set<string>();
  private started = 0;
  private seen = 0;
  private awaited = 0;
  private readonly announced: Array<{ url: string; suggestedFilename: string }> = [];
  private readonly seenWaiters = new Set<() => void>();
  private cutWithoutEvent: NodeJS.Timeout | undefined;
  private error: FleetError | undefined;

  constructor(
    private readonly accept: boolean,
    readonly limit: number,
    private readonly proxy: PolicyProxy,
    /** Ends the task at once (the page session's violation path). */
    private readonly fail: (err: FleetError) => void,
    /** Refusals also go to the task's `blocked` list, which every task type reports. */
    private readonly onRefused: (url: string, message: string) => void,
  ) {
    if (accept) {
      proxy.downloadCap = limit;
      proxy.onDownloadCut = (url) => this.onCut(url);
    }
  }

  attach(page: Page): void {
    page.on('download', (d) => this.onDownload(d));
  }

  /** Downloads the page has started so far (accepted or not). */
  get count(): number {
    return this.seen;
  }

  /** Resolves once more than `count` downloads have started, or after `timeoutMs`. */
  waitForMore(count: number, timeoutMs: number): Promise<void> {
    if (this.seen > count) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.seenWaiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      timer.unref();
      this.seenWaiters.add(done);
    });
  }

  /**
   * The `waitForDownload` step: the n-th call waits for the n-th download of the task (one that already started
   * counts), so a step after a click that downloads without navigating is not a race. Undefined on timeout.
   */
  async waitForNext(timeoutMs: number): Promise<{ url: string; suggestedFilename: string } | undefined> {
    const index = this.awaited++;
    const deadline = Date.now() + timeoutMs;
    while (this.seen <= index && Date.now() < deadline)
      await this.waitForMore(this.seen, deadline - Date.now());
    const hit = this.announced[index];
    if (!hit) this.awaited--;
    return hit;
  }

  private onDownload(d: Download): void {
    const url = d.url();
    const suggestedFilename = truncate(d.suggestedFilename(), 255);
    if (this.announced.length < MAX_DOWNLOADS_PER_TASK * 5)
      this.announced.push({ url: truncate(url), suggestedFilename });
    this.seen++;
    for (const wake of [...this.seenWaiters]) wake();
    if (!this.accept || this.started >= MAX_DOWNLOADS_PER_TASK) {
      const refused = this.accept ? 'too many downloads' : DOWNLOADS_OFF;
      this.reports.push({ url: truncate(url), suggestedFilename, refused });
      this.onRefused(url, refused);
      // Denied downloads never reach the disk; an accepted one over the count is cancelled and deleted.
      if (this.accept) this.track(d, this.discard(d));
      return;
    }
    this.started++;
    this.live.set(d, url);
    if (this.proxy.capDownload(url, this.limit)) this.onCut(url);
    this.track(d, this.settle(d, url, suggestedFilename));
  }

  private track(d: Download, work: Promise<void>): void {
    const p = work
      .catch(() => undefined)
      .finally(() => {
        this.live.delete(d);
        this.pending.delete(p);
      });
    this.pending.add(p);
  }

  private async settle(d: Download, url: string, suggestedFilename: string): Promise<void> {
    try {
      const failure = await d.failure();
      if (failure !== null) {
        if (this.proxy.cutDownloads.has(url)) this.tooLarge(url, suggestedFilename);
        else this.reports.push({ url: truncate(url), suggestedFilename, failed: truncate(failure, 500) });
        return;
      }
      const path = await d.path();
      const { size } = await stat(path);
      if (size > this.limit) {
        this.tooLarge(url, suggestedFilename, size);
        return;
      }
      const data = await readFile(path);
      const artifact = this.uniqueName(artifactNameOf(suggestedFilename));
      const contentType = this.proxy.contentTypeOf(url)?.slice(0, 200) ?? 'application/octet-stream';
      this.artifacts.push({ name: artifact, contentType, data });
      this.reports.push({
        url: truncate(url),
        suggestedFilename,
        artifact,
        contentType,
        bytes: data.length,
        sha256: createHash('sha256').update(data).digest('hex'),
      });
    } catch (err) {
      this.reports.push({
        url: truncate(url),
        suggestedFilename,
        failed: truncate((err as Error)?.message ?? String(err), 500),
      });
    } finally {
      await this.discard(d);
    }
  }

  private onCut(url: string): void {
    let name: string | undefined;
    for (const [d, u] of this.live) {
      if (u !== url) continue;
      name = d.suggestedFilename();
      void d.cancel().catch(() => undefined);
    }
    if (name !== undefined) {
      clearTimeout(this.cutWithoutEvent);
      this.tooLarge(url, name);
      return;
    }
    // On loopback the proxy can pass the cap before Chromium has announced the download: give the announcement
    // a moment so the error can name the file (onDownload comes back here), then fail without the name.
    this.cutWithoutEvent ??= setTimeout(() => this.tooLarge(url, ''), CUT_NAME_WAIT_MS);
    this.cutWithoutEvent.unref();
  }

  private tooLarge(url: string, suggestedFilename: string, bytes?: number): void {
    clearTimeout(this.cutWithoutEvent);
    if (this.error) return;
    this.error = new FleetError(
      'payload_too_large',
      `the download ${truncate(suggestedFilename || url, 200)} is over the cap of ${this.limit} bytes`,
      {
        details: {
          limit: this.limit,
          url: truncate(url),
          ...(suggestedFilename ? { suggestedFilename } : {}),
          ...(bytes !== undefined ? { bytes } : {}),
        },
      },
    );
    this.fail(this.error);
  }

  private uniqueName(name: string): string {
    let out = name;
    for (let i = 2; this.names.has(out); i++) out = `${i}-${name}`;
    this.names.add(out);
    return out;
  }

  /** Cancels (when still running) and deletes a download's file. */
  private async discard(d: Download): Promise<void> {
    await d.cancel().catch(() => undefined);
    await d.delete().catch(() => undefined);
  }

  /**
   * Lets downloads the last step set off arrive (the proxy goes quiet for a moment, and every attachment it
   * answered is announced by the page), waits for those started, then returns what came of them. Throws when one
   * was over the cap. The settling is bounded by SETTLE_MAX_MS.
   */
  async finish(): Promise<DownloadResult> {
    const deadline = Date.now() + SETTLE_MAX_MS;
    await this.proxy.quiet(SETTLE_QUIET_MS, deadline);
    while (this.seen < this.proxy.attachments && Date.now() < deadline)
      await this.waitForMore(this.seen, deadline - Date.now());
    while (this.pending.size > 0) await Promise.all([...this.pending]);
    if (this.error) throw this.error;
    return { downloads: [...this.reports], artifacts: [...this.artifacts] };
  }

  /**
   * Whatever happened to the task, no download file outlives it: running ones are cancelled and every file is
   * deleted. Bounded: a hung browser is the context close's problem (Playwright deletes a closed context's
   * downloads too, and the instance dir goes with the instance).
   */
  async cleanup(timeoutMs: number): Promise<void> {
    clearTimeout(this.cutWithoutEvent);
    for (const d of this.live.keys()) void d.cancel().catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeoutMs);
      timer.unref();
    });
    await Promise.race([Promise.all([...this.pending]), timedOut]);
    clearTimeout(timer);
  }
}
