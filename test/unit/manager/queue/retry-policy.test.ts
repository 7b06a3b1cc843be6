import { describe, expect, it } from 'vitest';
import { decideFailure, isRetryableFailure } from '../../../../src/manager/queue/retry-policy.js';
import { retryDelay } from '../../../../src/manager/queue/task-queue.js';

const queue = { backoffMs: 200, maxBackoffMs: 1000, random: () => 1 };

describe('retry policy', () => {
  it('backs off exponentially with jitter in [0.5, 1] and a cap', () => {
    expect(retryDelay(1, 200, 30_000, () => 0)).toBe(100);
    expect(retryDelay(1, 200, 30_000, () => 1)).toBe(200);
    expect(retryDelay(2, 200, 30_000, () => 1)).toBe(400);
    expect(retryDelay(3, 200, 30_000, () => 0.5)).toBe(600);
    expect(retryDelay(20, 200, 30_000, () => 1)).toBe(30_000);
  });

  it('decides retryability from the options, else the error, else the code', () => {
    const err = { code: 'handler_error', message: 'x', retryable: false };
    expect(isRetryableFailure(err, { outcome: 'failed' })).toBe(false);
    expect(isRetryableFailure({ ...err, retryable: true }, { outcome: 'failed' })).toBe(true);
    expect(isRetryableFailure(err, { outcome: 'failed', retryable: true })).toBe(true);
    expect(isRetryableFailure({ ...err, retryable: true }, { outcome: 'failed', retryable: false })).toBe(
      false,
    );
    expect(isRetryableFailure({ ...err, code: 'timeout' }, { outcome: 'timed_out' })).toBe(true);
    expect(isRetryableFailure({ ...err, code: 'worker_lost' }, { outcome: 'worker_lost' })).toBe(true);
  });

  it('retries while attempts remain, at now + delay(attempt)', () => {
    const err = { code: 'worker_lost', message: 'gone', retryable: true };
    expect(
      decideFailure({ attempt: 1, maxAttempts: 3 }, err, { outcome: 'worker_lost' }, queue, 5000),
    ).toEqual({
      kind: 'retry',
      notBefore: 5200,
      error: err,
    });
    expect(
      decideFailure({ attempt: 2, maxAttempts: 3 }, err, { outcome: 'worker_lost' }, queue, 5000),
    ).toMatchObject({
      notBefore: 5400,
    });
  });

  it('ends with the last error plus details.attempts when retries are used up', () => {
    const err = { code: 'timeout', message: 'late', retryable: true, details: { limitMs: 10 } };
    expect(decideFailure({ attempt: 3, maxAttempts: 3 }, err, { outcome: 'timed_out' }, queue, 0)).toEqual({
      kind: 'final',
      state: 'timed_out',
      error: { ...err, details: { limitMs: 10, attempts: 3 } },
    });
  });

  it('ends a non-retryable failure at once with the error unchanged', () => {
    const err = { code: 'python_error', message: 'NameError', retryable: false };
    expect(decideFailure({ attempt: 1, maxAttempts: 3 }, err, { outcome: 'failed' }, queue, 0)).toEqual({
      kind: 'final',
      state: 'failed',
      error: err,
    });
  });

  describe("issue 14 point 5: one budget, the upstream's word, poison tasks", () => {
    const attempt = (outcome: string, details?: Record<string, unknown>) => ({
      attempt: 1,
      workerId: 'w',
      leaseToken: 'l',
      startedAt: 0,
      outcome: outcome as 'failed',
      error: { code: 'figma_upstream', message: 'x', retryable: true, ...(details ? { details } : {}) },
    });

    it("a worker's own upstream tries count against the task's attempts", () => {
      const err = {
        code: 'figma_upstream',
        message: '500',
        retryable: true,
        details: { upstreamAttempts: 4 },
      };
      const d = decideFailure(
        { attempt: 1, maxAttempts: 3, attempts: [attempt('failed', { upstreamAttempts: 4 })] },
        err,
        { outcome: 'failed' },
        queue,
        5000,
      );
      expect(d.kind).toBe('final');
      const ok = decideFailure(
        { attempt: 1, maxAttempts: 3, attempts: [attempt('failed', { upstreamAttempts: 1 })] },
        { ...err, details: { upstreamAttempts: 1 } },
        { outcome: 'failed' },
        queue,
        5000,
      );
      expect(ok.kind).toBe('retry');
    });

    it('retryAfter (seconds) sets the earliest next attempt, or fails at once past the deadline', () => {
      const err = { code: 'figma_rate_limited', message: '429', retryable: true, details: { retryAfter: 2 } };
      const task = {
        attempt: 1,
        maxAttempts: 3,
        createdAt: 5000,
        timeoutMs: 10_000,
        attempts: [attempt('failed')],
      };
      expect(decideFailure(task, err, { outcome: 'failed' }, queue, 5000)).toMatchObject({
        kind: 'retry',
        notBefore: 7000,
      });
      const late = { ...err, details: { retryAfter: 3600 } };
      expect(decideFailure(task, late, { outcome: 'failed' }, queue, 5000)).toMatchObject({
        kind: 'final',
        error: { code: 'figma_rate_limited' },
      });
    });

    it('a task that took down two workers fails as poison_task', () => {
      const err = { code: 'worker_lost', message: 'gone', retryable: true };
      const d = decideFailure(
        {
          attempt: 2,
          maxAttempts: 5,
          attempts: [attempt('worker_lost', { felled: true }), attempt('worker_lost', { felled: true })],
        },
        err,
        { outcome: 'worker_lost' },
        queue,
        5000,
      );
      expect(d).toMatchObject({
        kind: 'final',
        state: 'failed',
        error: { code: 'poison_task', retryable: false },
      });
      const hung = decideFailure(
        {
          attempt: 2,
          maxAttempts: 5,
          attempts: [attempt('worker_lost', { felled: true }), attempt('timed_out', { hung: true })],
        },
        err,
        { outcome: 'timed_out' },
        queue,
        5000,
      );
      expect(hung).toMatchObject({ error: { code: 'poison_task' } });
      const once = decideFailure(
        { attempt: 1, maxAttempts: 5, attempts: [attempt('worker_lost')] },
        err,
        { outcome: 'worker_lost' },
        queue,
        5000,
      );
      expect(once.kind).toBe('retry');
    });
  });
});
