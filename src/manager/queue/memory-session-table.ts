/**
 * The memory store's session table: session → the worker holding it, with an expiry, and per worker the
 * sessions bound to it so a gone worker's sessions are all marked lost at once. Entries sit in a Map in the
 * order they were last refreshed, so expired ones are dropped from its front and the table stays as large
 * as the sessions in use.
 */
import type { SessionBinding } from './task-queue.js';

interface Entry {
  workerId: string;
  lost: boolean;
  expiresAt: number;
}

export type BindOutcome =
  { kind: 'bound' } | { kind: 'other'; workerId: string } | { kind: 'lost'; workerId: string };

export class MemorySessionTable {
  private readonly entries = new Map<string, Entry>();
  private readonly byWorker = new Map<string, Set<string>>();

  constructor(private readonly now: () => number) {}

  get size(): number {
    return this.entries.size;
  }

  get(sessionId: string): SessionBinding | undefined {
    const entry = this.live(sessionId);
    return entry && { workerId: entry.workerId, lost: entry.lost };
  }

  /**
   * Binds the session to `workerId` for `ttlMs` unless it stands bound to another live worker, or to a gone
   * one and `replaceLost` is false; a binding to `workerId` itself is refreshed.
   */
  bind(sessionId: string, workerId: string, ttlMs: number, replaceLost: boolean): BindOutcome {
    this.purge();
    const entry = this.live(sessionId);
    if (entry && entry.workerId !== workerId && !entry.lost)
      return { kind: 'other', workerId: entry.workerId };
    if (entry?.lost && !replaceLost) return { kind: 'lost', workerId: entry.workerId };
    if (entry) this.forget(sessionId, entry);
    this.entries.set(sessionId, { workerId, lost: false, expiresAt: this.now() + ttlMs });
    let sessions = this.byWorker.get(workerId);
    if (!sessions) this.byWorker.set(workerId, (sessions = new Set()));
    sessions.add(sessionId);
    return { kind: 'bound' };
  }

  /** Marks every session bound to the worker lost; the marks expire with the bindings they replace. */
  loseWorker(workerId: string): void {
    const sessions = this.byWorker.get(workerId);
    if (!sessions) return;
    this.byWorker.delete(workerId);
    for (const sessionId of sessions) {
      const entry = this.entries.get(sessionId);
      if (entry?.workerId === workerId) entry.lost = true;
    }
  }

  private live(sessionId: string): Entry | undefined {
    const entry = this.entries.get(sessionId);
    if (entry && entry.expiresAt <= this.now()) {
      this.forget(sessionId, entry);
      return undefined;
    }
    return entry;
  }

  private forget(sessionId: string, entry: Entry): void {
    this.entries.delete(sessionId);
    const sessions = this.byWorker.get(entry.workerId);
    if (sessions?.delete(sessionId) && sessions.size === 0) this.byWorker.delete(entry.workerId);
  }

  private purge(): void {
    const now = this.now();
    for (const [sessionId, entry] of this.entries) {
      if (entry.expiresAt > now) break;
      this.forget(sessionId, entry);
    }
  }
}
