/** Small abort helpers shared by the client and the execution core. */
import { FleetError } from '../../../protocol/errors.js';

/** The reason a signal carries, as a FleetError (the runtime aborts with FleetErrors; anything else is a cancel). */
export function abortReason(signal: AbortSignal): FleetError {
  const r: unknown = signal.reason;
  if (r instanceof FleetError) return r;
  if (r instanceof Error && r.name === 'TimeoutError')
    return new FleetError('timeout', 'the call ran past its deadline');
  return new FleetError('cancelled', r instanceof Error && r.message ? r.message : 'the call was cancelled');
}

export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw abortReason(signal);
}

/** Resolves after `ms`, or rejects with the signal's reason as soon as it aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortReason(signal));
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    timer.unref();
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortReason(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** A signal that aborts with `timeout` at the deadline, or with the parent's reason. */
export function deadlineSignal(
  parent: AbortSignal,
  deadline: number,
  now = Date.now(),
): { signal: AbortSignal; dispose(): void } {
  const controller = new AbortController();
  const onAbort = () => controller.abort(parent.reason);
  if (parent.aborted) controller.abort(parent.reason);
  else parent.addEventListener('abort', onAbort, { once: true });
  const timer = setTimeout(
    () => controller.abort(new FleetError('timeout', 'the call ran past its deadline')),
    Math.max(0, deadline - now),
  );
  timer.unref();
  return {
    signal: controller.signal,
    dispose() {
      clearTimeout(timer);
      parent.removeEventListener('abort', onAbort);
    },
  };
}
