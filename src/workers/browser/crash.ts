/**
 * One classification for every way a task's page can stop under it. Who is to blame decides the code and
 * whether the manager may retry:
 *
 *  - `page_crashed`: the task's own renderer died (Playwright's `crash` event, "Page crashed" / "Target crashed"
 *    from a call in flight), typically killed by the instance's memory cgroup. Running the page again would do the
 *    same, so it is not retryable unless the caller opted in (`options.retryPageFailures`).
 *  - `page_unresponsive`: the task's own page stopped answering (its main thread busy: an endless loop). The
 *    watchdog probes the page; a probe unanswered for `unresponsive_timeout`, or for a second when the deadline is
 *    half a second away, ends the task with this code instead of a retryable `timeout`. Same opt-in.
 *  - `browser_crashed`: the browser died or was restarted (another task's page hung its close, the process was
 *    killed): not this task's doing, so retryable.
 *  - `timeout`: the deadline passed while the page was still answering (slow network, long waits): retryable.
 */
import type { Page } from 'playwright-core';
import { FleetError } from '../../protocol/errors.js';

export const PAGE_CRASH_RE = /Page crashed|Target crashed|renderer.*(?:crash|gone)/i;
export const CLOSED_RE = /has been closed|Target closed|browser has disconnected/i;

export function pageCrashedError(retryable: boolean, details: Record<string, unknown> = {}): FleetError {
  const oom = details.oomKilled === true;
  return new FleetError(
    'page_crashed',
    oom
      ? `the page's renderer was killed at the browser's memory limit (${String(details.limitMb)} MB)`
      : "the page's renderer crashed",
    { retryable, details },
  );
}

export function pageUnresponsiveError(retryable: boolean, stuckMs: number): FleetError {
  return new FleetError(
    'page_unresponsive',
    `the page stopped answering (main thread busy for ${Math.round(stuckMs)} ms)`,
    { retryable, details: { stuckMs: Math.round(stuckMs) } },
  );
}

export interface WatchdogOptions {
  /** A probe unanswered this long means the page is unresponsive. */
  unresponsiveMs: number;
  deadline: number;
  /** How often the page is probed. */
  intervalMs?: number;
}

/**
 * Probes the page's main thread until stopped; calls `onStuck(ms)` once when it is judged unresponsive. The
 * probe is an evaluation in the page, answered only between the page's own tasks, so a page in an endless loop
 * never answers while one that merely waits on the network does.
 */
export function watchPage(
  page: Page,
  o: WatchdogOptions,
  onStuck: (stuckMs: number) => void,
): { stop(): void } {
  const interval = o.intervalMs ?? 500;
  let pendingSince: number | undefined;
  let stopped = false;
  let fired = false;
  const probe = async () => {
    // The first probe after one interval: a short task never pays for the watchdog.
    await new Promise((r) => setTimeout(r, interval).unref());
    while (!stopped) {
      pendingSince = Date.now();
      await page.evaluate('0').catch(() => undefined);
      pendingSince = undefined;
      if (stopped) return;
      await new Promise((r) => setTimeout(r, interval).unref());
    }
  };
  void probe();
  const check = setInterval(() => {
    if (stopped || fired || pendingSince === undefined) return;
    const now = Date.now();
    const stuck = now - pendingSince;
    // Near the deadline a shorter silence is enough: after it the runtime answers a plain (retryable) timeout.
    if (stuck >= o.unresponsiveMs || (o.deadline - now <= 600 && stuck >= 1000)) {
      fired = true;
      onStuck(stuck);
    }
  }, 100);
  check.unref();
  return {
    stop() {
      stopped = true;
      clearInterval(check);
    },
  };
}
