import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import {
  PAGE_CRASH_RE,
  pageCrashedError,
  pageUnresponsiveError,
  watchPage,
} from '../../../../src/workers/browser/crash.js';

/** A page whose evaluations answer after `answerMs` (never when undefined). */
function fakePage(answerMs: number | undefined): { page: Page; probes: () => number } {
  let probes = 0;
  const page = {
    evaluate: () => {
      probes++;
      return answerMs === undefined
        ? new Promise(() => undefined)
        : new Promise((r) => setTimeout(() => r(0), answerMs));
    },
  } as unknown as Page;
  return { page, probes: () => probes };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('page watchdog', () => {
  it('calls a page that never answers unresponsive after unresponsiveMs, once', async () => {
    const { page } = fakePage(undefined);
    const stuck: number[] = [];
    const w = watchPage(page, { unresponsiveMs: 200, deadline: Date.now() + 60_000, intervalMs: 20 }, (ms) =>
      stuck.push(ms),
    );
    await sleep(1000);
    w.stop();
    expect(stuck).toHaveLength(1);
    expect(stuck[0]).toBeGreaterThanOrEqual(200);
  });

  it('leaves a page that answers alone, however long the task', async () => {
    const { page, probes } = fakePage(5);
    const stuck: number[] = [];
    const w = watchPage(page, { unresponsiveMs: 1000, deadline: Date.now() + 60_000, intervalMs: 20 }, (ms) =>
      stuck.push(ms),
    );
    await sleep(600);
    w.stop();
    expect(stuck).toEqual([]);
    expect(probes()).toBeGreaterThan(3);
  });

  it('judges sooner near the deadline, so a hung page is not reported as a retryable timeout', async () => {
    const { page } = fakePage(undefined);
    const stuck: number[] = [];
    const w = watchPage(page, { unresponsiveMs: 60_000, deadline: Date.now() + 1500, intervalMs: 20 }, (ms) =>
      stuck.push(ms),
    );
    await sleep(2000);
    w.stop();
    expect(stuck).toHaveLength(1);
  });

  it('stops probing when stopped', async () => {
    const { page, probes } = fakePage(1);
    const w = watchPage(
      page,
      { unresponsiveMs: 1000, deadline: Date.now() + 60_000, intervalMs: 10 },
      () => undefined,
    );
    await sleep(100);
    w.stop();
    const n = probes();
    await sleep(100);
    expect(probes()).toBe(n);
  });
});

describe('crash errors', () => {
  it('types crashes and hangs, retryable only on opt-in', () => {
    expect(pageCrashedError(false)).toMatchObject({ code: 'page_crashed', retryable: false });
    expect(pageCrashedError(true, { oomKilled: true, limitMb: 512 })).toMatchObject({
      code: 'page_crashed',
      retryable: true,
      message: expect.stringContaining('512 MB'),
    });
    expect(pageUnresponsiveError(false, 1234.5)).toMatchObject({
      code: 'page_unresponsive',
      retryable: false,
      details: { stuckMs: 1235 },
    });
    expect(PAGE_CRASH_RE.test('page.goto: Page crashed')).toBe(true);
    expect(PAGE_CRASH_RE.test('Target crashed')).toBe(true);
    expect(PAGE_CRASH_RE.test('net::ERR_CONNECTION_REFUSED')).toBe(false);
  });
});
