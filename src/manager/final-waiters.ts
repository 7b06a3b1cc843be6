/**
 * Callers waiting for tasks to reach a final state (`submitAndWait`, `waitForTask`), indexed by task id
 * behind the manager's one queue subscription, so thousands of waiting callers cost nothing per event.
 *
 * A waiter is one object the caller owns, linked to the other waiters of its task: no Set, unsubscribe
 * closure or shutdown subscription per wait. `POST /api/tasks?wait=1` makes one per task, and those were a
 * measurable part of the manager's CPU per task (docs/performance.md, "Fourth pass").
 */
import type { FleetError } from '../protocol/errors.js';
import type { TaskRecord } from './queue/task.js';

export interface FinalWaiter {
  /** The task reached a final state; the waiter is already removed. */
  final(task: TaskRecord): void;
  /** The manager is stopping; the waiter is already removed. */
  fail(err: FleetError): void;
  /** The next waiter of the same task (the list's own link). */
  next?: FinalWaiter | undefined;
}

export class FinalWaiters {
  private readonly byTask = new Map<string, FinalWaiter>();

  get size(): number {
    return this.byTask.size;
  }

  add(taskId: string, waiter: FinalWaiter): void {
    waiter.next = this.byTask.get(taskId);
    this.byTask.set(taskId, waiter);
  }

  /** Removes the waiter if it still waits; a waiter already settled is gone and this is a no-op. */
  remove(taskId: string, waiter: FinalWaiter): void {
    let head = this.byTask.get(taskId);
    if (head === waiter) {
      if (waiter.next) this.byTask.set(taskId, waiter.next);
      else this.byTask.delete(taskId);
      waiter.next = undefined;
      return;
    }
    for (; head; head = head.next) {
      if (head.next === waiter) {
        head.next = waiter.next;
        waiter.next = undefined;
        return;
      }
    }
  }

  /** Hands a final task to every waiter of its id, each once, after removing them all. */
  settle(task: TaskRecord): void {
    let w = this.byTask.get(task.id);
    if (!w) return;
    this.byTask.delete(task.id);
    while (w) {
      const next: FinalWaiter | undefined = w.next;
      w.next = undefined;
      w.final(task);
      w = next;
    }
  }

  /** Releases every waiter with `err` (a graceful stop). */
  failAll(err: () => FleetError): void {
    const heads = [...this.byTask.values()];
    this.byTask.clear();
    for (const head of heads) {
      for (let w: FinalWaiter | undefined = head; w;) {
        const next: FinalWaiter | undefined = w.next;
        w.next = undefined;
        w.fail(err());
        w = next;
      }
    }
  }
}
