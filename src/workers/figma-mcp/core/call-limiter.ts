/**
 * The one concurrency limit of the figma worker, shared by its three doors (task protocol, MCP over HTTP,
 * MCP over stdio). The shared runtime already bounds task-protocol tasks by its slots; this limiter is the
 * kind's own and every door goes through it, so three MCP calls and three tasks never run as six. Waiters
 * queue in arrival order; a waiter that is cancelled leaves the queue; past `maxWaiting` a call is refused
 * with `busy` instead of queueing without bound.
 */
import { FleetError } from '../../../protocol/errors.js';
import { abortReason } from './abort.js';

interface Waiter {
  resolve(release: () => void): void;
  reject(err: Error): void;
}

export class CallLimiter {
  private running = 0;
  private readonly queue: Waiter[] = [];

  constructor(
    readonly max: number,
    private readonly maxWaiting: number,
  ) {}

  get active(): number {
    return this.running;
  }

  get waiting(): number {
    return this.queue.length;
  }

  acquire(signal: AbortSignal): Promise<() => void> {
    if (signal.aborted) return Promise.reject(abortReason(signal));
    if (this.running < this.max) {
      this.running++;
      return Promise.resolve(this.releaser());
    }
    if (this.queue.length >= this.maxWaiting) {
      return Promise.reject(
        new FleetError(
          'busy',
          `all ${this.max} figma slots are busy and ${this.queue.length} calls are waiting`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve: (release) => {
          signal.removeEventListener('abort', onAbort);
          resolve(release);
        },
        reject,
      };
      const onAbort = () => {
        const i = this.queue.indexOf(waiter);
        if (i >= 0) this.queue.splice(i, 1);
        reject(abortReason(signal));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.queue.push(waiter);
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.queue.shift();
      // The slot passes straight to the next waiter, so `running` never dips and lets a newcomer cut in.
      if (next) next.resolve(this.releaser());
      else this.running--;
    };
  }
}
