/**
 * Identical concurrent calls share one request. The shared request runs under its own controller and is
 * aborted only when every caller waiting on it has gone, so one caller's cancel never fails the others.
 */
import { abortReason } from '../core/abort.js';

interface Flight<T> {
  promise: Promise<T>;
  controller: AbortController;
  waiters: number;
}

export class SingleFlight {
  private readonly flights = new Map<string, Flight<unknown>>();
  joins = 0;

  run<T>(key: string, signal: AbortSignal, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    let flight = this.flights.get(key) as Flight<T> | undefined;
    if (flight) this.joins++;
    else {
      const controller = new AbortController();
      const created: Flight<T> = { controller, waiters: 0, promise: Promise.resolve() as Promise<T> };
      created.promise = work(controller.signal).finally(() => {
        if (this.flights.get(key) === created) this.flights.delete(key);
      });
      // The shared promise may reject after every waiter left; that rejection is expected and owned here.
      created.promise.catch(() => undefined);
      this.flights.set(key, created);
      flight = created;
    }
    const f = flight;
    f.waiters++;
    return new Promise<T>((resolve, reject) => {
      let settled = false;
      const leave = () => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        f.waiters--;
      };
      const onAbort = () => {
        leave();
        if (f.waiters === 0) {
          f.controller.abort(signal.reason);
          if (this.flights.get(key) === f) this.flights.delete(key);
        }
        reject(abortReason(signal));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      f.promise.then(
        (v) => {
          if (settled) return;
          leave();
          resolve(v);
        },
        (e: unknown) => {
          if (settled) return;
          leave();
          reject(e instanceof Error ? e : new Error(String(e)));
        },
      );
    });
  }

  get inFlight(): number {
    return this.flights.size;
  }
}
