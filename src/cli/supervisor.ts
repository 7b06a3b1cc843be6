/**
 * Runs worker processes for `fleet up` and keeps them running: a child that dies is restarted with
 * crash-loop backoff (1 s, 2 s, 4 s … 30 s; reset after a minute of good health), and one that keeps dying is
 * parked (status `error`, an alert) instead of restarting forever.
 *
 * Children get a pipe on stdin and exit when it closes, so they die with the supervisor even after a
 * `kill -9` of it (no orphans).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createServer } from 'node:net';
import type { Logger } from 'pino';

export interface ChildSpec {
  /** The spec's workerType. */
  kind: string;
  port: number;
  host: string;
  args: string[];
  env?: Record<string, string>;
}

export type ChildState = 'starting' | 'running' | 'backoff' | 'parked' | 'stopping' | 'stopped';

export interface SupervisedChild {
  id: string;
  spec: ChildSpec;
  state: ChildState;
  process: ChildProcess | undefined;
  restarts: number;
  recentCrashes: number[];
  startedAt: number;
  lastExit?: { code: number | null; signal: NodeJS.Signals | null; at: number };
}

export interface SupervisorOptions {
  command: string;
  baseArgs: string[];
  logger: Logger;
  /** Crashes within `crashWindowMs` after which a child is parked. */
  maxCrashes?: number;
  crashWindowMs?: number;
  maxBackoffMs?: number;
  stopGraceMs?: number;
}

export type SupervisorEvent =
  | { kind: 'started'; child: SupervisedChild }
  | { kind: 'exited'; child: SupervisedChild }
  | { kind: 'parked'; child: SupervisedChild; reason: string }
  | { kind: 'stopped'; child: SupervisedChild };

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export class Supervisor {
  private readonly children = new Map<string, SupervisedChild>();
  private readonly events = new EventEmitter();
  private seq = 0;
  private stopping = false;

  constructor(private readonly o: SupervisorOptions) {}

  on(listener: (event: SupervisorEvent) => void): () => void {
    this.events.on('event', listener);
    return () => this.events.off('event', listener);
  }

  list(): SupervisedChild[] {
    return [...this.children.values()];
  }

  byPort(port: number): SupervisedChild | undefined {
    return this.list().find((c) => c.spec.port === port);
  }

  start(spec: ChildSpec): SupervisedChild {
    const child: SupervisedChild = {
      id: `${spec.kind}-${++this.seq}`,
      spec,
      state: 'starting',
      process: undefined,
      restarts: 0,
      recentCrashes: [],
      startedAt: Date.now(),
    };
    this.children.set(child.id, child);
    this.launch(child);
    return child;
  }

  /** Stops a child for good: SIGTERM (it drains), then SIGKILL after the grace period. */
  async stopChild(id: string): Promise<void> {
    const child = this.children.get(id);
    if (!child) return;
    child.state = 'stopping';
    await this.terminate(child);
    child.state = 'stopped';
    this.children.delete(id);
    this.events.emit('event', { kind: 'stopped', child });
  }

  /** Restarts a child now (also un-parks it). */
  async restart(id: string): Promise<boolean> {
    const child = this.children.get(id);
    if (!child) return false;
    child.state = 'stopping';
    await this.terminate(child);
    child.recentCrashes = [];
    child.restarts += 1;
    this.launch(child);
    return true;
  }

  async stopAll(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.list().map((c) => this.stopChild(c.id)));
  }

  private launch(child: SupervisedChild): void {
    if (this.stopping) return;
    const proc = spawn(this.o.command, [...this.o.baseArgs, ...child.spec.args], {
      stdio: ['pipe', 'inherit', 'inherit'],
      env: { ...process.env, ...child.spec.env, FLEET_SUPERVISED: '1' },
    });
    child.process = proc;
    child.state = 'running';
    child.startedAt = Date.now();
    proc.stdin?.on('error', () => undefined);
    this.events.emit('event', { kind: 'started', child });
    proc.once('exit', (code, signal) => {
      child.process = undefined;
      child.lastExit = { code, signal, at: Date.now() };
      this.events.emit('event', { kind: 'exited', child });
      if (child.state === 'stopping' || this.stopping) return;
      this.onCrash(child);
    });
  }

  private onCrash(child: SupervisedChild): void {
    const now = Date.now();
    const window = this.o.crashWindowMs ?? 60_000;
    child.recentCrashes = [...child.recentCrashes.filter((t) => now - t < window), now];
    const exit = child.lastExit;
    if (child.recentCrashes.length >= (this.o.maxCrashes ?? 5)) {
      child.state = 'parked';
      const reason = `${child.spec.kind} on port ${child.spec.port} crashed ${child.recentCrashes.length} times within ${Math.round(window / 1000)} s; parked (restart it by hand once fixed)`;
      this.o.logger.error({ child: child.id, exit }, reason);
      this.events.emit('event', { kind: 'parked', child, reason });
      return;
    }
    const delay = Math.min(this.o.maxBackoffMs ?? 30_000, 1000 * 2 ** (child.recentCrashes.length - 1));
    child.state = 'backoff';
    this.o.logger.warn(
      { child: child.id, exit, restartInMs: delay },
      `${child.spec.kind} worker exited; restarting`,
    );
    setTimeout(() => {
      if (child.state !== 'backoff') return;
      child.restarts += 1;
      this.launch(child);
    }, delay).unref();
  }

  private terminate(child: SupervisedChild): Promise<void> {
    const proc = child.process;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const kill = setTimeout(() => proc.kill('SIGKILL'), this.o.stopGraceMs ?? 10_000);
      kill.unref();
      proc.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      proc.kill('SIGTERM');
    });
  }
}
