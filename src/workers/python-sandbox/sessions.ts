/**
 * Stateful sessions: a `sessionId` owns one sandbox (interpreter, variables, workspace, packages) until it
 * is closed, idles past its TTL, or is killed (hard timeout, OOM). One task at a time per session; a
 * second one gets `session_busy`. A session that ended leaves a tombstone for a while, so a late task
 * gets `session_expired` (with the reason) instead of a silently fresh interpreter that lost its state.
 */
import type { Logger } from 'pino';
import { FleetError } from '../../protocol/errors.js';
import type { SandboxRuntime } from './runtime.js';
import type { Sandbox } from './sandbox.js';

export interface Session {
  id: string;
  sandbox: Sandbox;
  createdAt: number;
  lastUsed: number;
  busy: boolean;
  runs: number;
  packages: string[];
}

export type EndReason =
  | 'expired'
  | 'closed'
  | 'killed: timeout'
  | 'killed: oom'
  | 'killed: process limit'
  | 'killed: died'
  | 'evicted'
  | 'stopped';

interface Tombstone {
  reason: EndReason;
  at: number;
}

export interface SessionManagerOptions {
  ttlMs: number;
  maxSessions: number;
  now?: () => number;
  logger: Logger;
}

const MAX_TOMBSTONES = 10_000;

export class SessionManager {
  private readonly sessions = new Map<string, Session>();
  private readonly tombstones = new Map<string, Tombstone>();
  private readonly pending = new Map<string, Promise<Session>>();
  private readonly now: () => number;
  private sweeper: NodeJS.Timeout | undefined;
  ended = { expired: 0, closed: 0, killed: 0, evicted: 0 };

  constructor(
    private readonly runtime: SandboxRuntime,
    private readonly options: SessionManagerOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  startSweeper(): void {
    const every = Math.max(1000, Math.min(30_000, Math.floor(this.options.ttlMs / 4)));
    this.sweeper = setInterval(() => void this.sweep(), every);
    this.sweeper.unref();
  }

  get size(): number {
    return this.sessions.size;
  }

  list(): Session[] {
    return [...this.sessions.values()];
  }

  /** Takes the session's lock, creating the session when allowed. Release with `release()`. */
  async acquire(id: string, opts: { create: boolean; reset?: boolean }): Promise<Session> {
    const existing = this.sessions.get(id);
    if (existing) {
      if (this.now() - existing.lastUsed > this.options.ttlMs && !existing.busy) {
        await this.end(existing, 'expired');
      } else {
        if (existing.busy) {
          throw new FleetError('session_busy', `session "${id}" is running another task`, {
            details: { sessionId: id },
          });
        }
        if (!existing.sandbox.alive) {
          await this.end(existing, 'killed: died');
        } else {
          existing.busy = true;
          existing.lastUsed = this.now();
          return existing;
        }
      }
    }
    if (this.pending.has(id)) {
      throw new FleetError('session_busy', `session "${id}" is starting for another task`, {
        details: { sessionId: id },
      });
    }
    const tomb = this.tombstones.get(id);
    if (tomb && !opts.reset) {
      throw new FleetError(
        'session_expired',
        `session "${id}" ended (${tomb.reason}); its variables and files are gone. Use a new sessionId or pass resetSession: true.`,
        { details: { sessionId: id, reason: tomb.reason, endedAt: new Date(tomb.at).toISOString() } },
      );
    }
    if (!opts.create) {
      throw new FleetError('session_not_found', `no session "${id}"`, { details: { sessionId: id } });
    }
    this.tombstones.delete(id);
    await this.makeRoom();
    const starting = (async () => {
      const sandbox = await this.runtime.acquire();
      const session: Session = {
        id,
        sandbox,
        createdAt: this.now(),
        lastUsed: this.now(),
        busy: true,
        runs: 0,
        packages: [],
      };
      this.sessions.set(id, session);
      return session;
    })();
    this.pending.set(id, starting);
    try {
      return await starting;
    } finally {
      this.pending.delete(id);
    }
  }

  release(session: Session): void {
    session.busy = false;
    session.lastUsed = this.now();
  }

  /** Ends a session whose sandbox was killed under a task. */
  async kill(session: Session, reason: EndReason): Promise<void> {
    await this.end(session, reason);
  }

  async close(id: string): Promise<boolean> {
    const session = this.sessions.get(id);
    if (!session) return false;
    await this.end(session, 'closed');
    return true;
  }

  private async makeRoom(): Promise<void> {
    while (this.sessions.size + this.pending.size >= this.options.maxSessions) {
      const idle = [...this.sessions.values()]
        .filter((s) => !s.busy)
        .sort((a, b) => a.lastUsed - b.lastUsed)[0];
      if (!idle) {
        throw new FleetError('busy', `all ${this.options.maxSessions} sessions are running tasks`);
      }
      await this.end(idle, 'evicted');
    }
  }

  private async end(session: Session, reason: EndReason): Promise<void> {
    if (this.sessions.get(session.id) !== session) return;
    this.sessions.delete(session.id);
    if (reason !== 'stopped') {
      this.tombstones.set(session.id, { reason, at: this.now() });
      if (this.tombstones.size > MAX_TOMBSTONES) {
        const oldest = this.tombstones.keys().next().value;
        if (oldest !== undefined) this.tombstones.delete(oldest);
      }
    }
    if (reason === 'expired') this.ended.expired++;
    else if (reason === 'closed') this.ended.closed++;
    else if (reason === 'evicted') this.ended.evicted++;
    else if (reason.startsWith('killed')) this.ended.killed++;
    this.options.logger.info({ sessionId: session.id, reason, runs: session.runs }, 'python session ended');
    await this.runtime.destroy(session.sandbox);
  }

  /** Ends idle sessions past their TTL and forgets old tombstones. */
  async sweep(): Promise<void> {
    const now = this.now();
    for (const session of [...this.sessions.values()]) {
      if (!session.busy && now - session.lastUsed > this.options.ttlMs) await this.end(session, 'expired');
    }
    const keep = Math.max(this.options.ttlMs * 4, 3_600_000);
    for (const [id, tomb] of this.tombstones) if (now - tomb.at > keep) this.tombstones.delete(id);
  }

  async stop(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    await Promise.all([...this.sessions.values()].map((s) => this.end(s, 'stopped')));
  }
}
