/**
 * One sandboxed interpreter: its process chain, its cgroup, its directories and its control channel.
 * A Sandbox runs one thing at a time; sessions and the pool decide who owns it.
 *
 * Output: user code writes to the real fd 1/2 (subprocesses too). Each run ends with a per-run marker on
 * both streams, so everything printed by a run is attributed to it; what exceeds the output cap is
 * counted and dropped behind a marker, never buffered.
 *
 * Stopping: interrupt() sends SIGINT to the interpreter's main thread (KeyboardInterrupt, the
 * interpreter survives); kill() empties the cgroup and kills bwrap, whose pid-namespace init takes every
 * descendant with it, daemons included.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import type { Readable, Writable } from 'node:stream';
import type { Logger } from 'pino';
import { SandboxCgroup, type CgroupStats } from './cgroups.js';
import { buildLaunch, SANDBOX_PKGS, SANDBOX_WORKSPACE, type ChainConfig } from './chain.js';
import type { SandboxDirs } from './workspace.js';

export type StreamName = 'stdout' | 'stderr';

export interface RunError {
  type: string;
  message: string;
  traceback?: string;
  line?: number | null;
  column?: number | null;
  errno?: number;
}

export interface WrittenFile {
  path: string;
  size: number;
  change: 'created' | 'modified';
}

export interface Figure {
  name: string;
  data: Buffer;
}

export interface ExecOutcome {
  /** `done`: the interpreter answered (maybe with an exception); `killed`: the tree was killed. */
  status: 'done' | 'killed';
  ok: boolean;
  interrupted: boolean;
  syntax: boolean;
  exitStatus: number;
  value?: string;
  valueType?: string;
  error?: RunError;
  figures: Figure[];
  stdout: string;
  stderr: string;
  truncated: boolean;
  droppedBytes: number;
  reaped: number;
  /** Files the run created or changed, as the runner saw them (its own report: trusted for nothing). */
  files: WrittenFile[];
  killReason?: KillReason;
  cgroup: { oomKills: number; pidsMaxHits: number };
  durationMs: number;
}

export type KillReason =
  'timeout' | 'cancelled' | 'oom' | 'cpu_limit' | 'died' | 'stopped' | 'workspace_full';

export interface ExecOptions {
  /** Runs of the same code that hit the soft stage get a KeyboardInterrupt at softAt, a kill at hardAt. */
  softAt: number;
  hardAt: number;
  signal: AbortSignal;
  onOutput?: (stream: StreamName, data: string) => void;
  figures?: boolean;
  /** Ask the runner which workspace files the run created or changed. */
  files?: boolean;
  interruptGraceMs: number;
  /** Called every ~250 ms while the code runs; returning a reason kills the run (workspace quota). */
  watchdog?: () => KillReason | undefined;
}

interface Collector {
  id: string;
  marker: string;
  decoders: Record<StreamName, StringDecoder>;
  carry: Record<StreamName, string>;
  ended: Record<StreamName, boolean>;
  text: Record<StreamName, string>;
  bytes: number;
  dropped: number;
  truncated: boolean;
  onOutput: ((stream: StreamName, data: string) => void) | undefined;
  onEnded: (() => void) | undefined;
}

export interface SandboxStartOptions {
  id: string;
  uid: number;
  dirs: SandboxDirs;
  chain: ChainConfig;
  runnerPath: string;
  preload: string[];
  logger: Logger;
  /** Startup deadline; a chain that does not answer `ready` in time is killed. */
  startTimeoutMs?: number;
}

let runCounter = 0;

/** Control events and raw payloads are capped together; a runner past it is killed. */
const CONTROL_LIMIT = 64 * 1024 * 1024;
/** Where a control event's raw bytes are attached (a symbol: JSON from the runner cannot forge it). */
const BIN = Symbol('bin');

export class Sandbox {
  readonly id: string;
  readonly uid: number;
  readonly dirs: SandboxDirs;
  readonly createdAt = Date.now();
  private child: ChildProcess | undefined;
  private cgroup: SandboxCgroup | undefined;
  private ctrlIn: Writable | undefined;
  private ctrlChunks: Buffer[] = [];
  private ctrlLength = 0;
  private ctrlPending: { event: Record<string | symbol, unknown>; bin: number } | undefined;
  private readonly waiters = new Map<string, (event: Record<string, unknown>) => void>();
  private collector: Collector | undefined;
  private exitPromise: Promise<void> | undefined;
  private exited = false;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exitListeners = new Set<() => void>();
  private killReason: KillReason | undefined;
  /** Host pids of the chain itself (bwrap, its pid-1 and the interpreter), taken before any user code. */
  private readonly chainPids = new Set<number>();
  runs = 0;

  private constructor(private readonly options: SandboxStartOptions) {
    this.id = options.id;
    this.uid = options.uid;
    this.dirs = options.dirs;
  }

  static async start(options: SandboxStartOptions): Promise<Sandbox> {
    const sandbox = new Sandbox(options);
    try {
      await sandbox.launch();
    } catch (err) {
      await sandbox.dispose();
      throw err;
    }
    return sandbox;
  }

  get alive(): boolean {
    return !this.exited;
  }

  get busy(): boolean {
    return this.collector !== undefined;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  cgroupStats(): CgroupStats | undefined {
    return this.cgroup?.stats();
  }

  /** Host pids of every process of the sandbox (cgroup when present, else the launcher only). */
  processIds(): number[] {
    const fromGroup = this.cgroup?.pids() ?? [];
    if (fromGroup.length > 0) return fromGroup;
    return this.child?.pid && !this.exited ? [this.child.pid] : [];
  }

  private async launch(): Promise<void> {
    const { chain, dirs, logger } = this.options;
    if (chain.level === 'strong' && chain.cgroups) {
      this.cgroup = SandboxCgroup.create(chain.cgroups, this.id, {
        memoryBytes: chain.limits.memoryBytes,
        maxProcesses: chain.limits.maxProcesses,
        cpuCores: chain.limits.cpuCores,
      });
    }
    const runnerConfig = {
      preload: this.options.preload,
      paths: [chain.level === 'none' ? dirs.pkgDir : SANDBOX_PKGS],
      cwd: chain.level === 'none' ? dirs.workDir : SANDBOX_WORKSPACE,
      reap: chain.level !== 'none',
    };
    const launch = buildLaunch(chain, {
      uid: this.uid,
      workDir: dirs.workDir,
      ...workspaceFs(chain, dirs),
      pkgDir: dirs.pkgDir,
      pkgDirWritable: false,
      runnerPath: this.options.runnerPath,
      cgroupProcs: this.cgroup?.procsFiles() ?? [],
      network: false,
      argv: ['{python}', '-I', '-B', '{runner}', JSON.stringify(runnerConfig)],
    });
    const stdio = stdioFor(['ignore', 'pipe', 'pipe', 'pipe', 'pipe'], launch.inputs);
    const child = spawn(launch.file, launch.args, {
      env: launch.env,
      stdio,
      detached: true,
      cwd: chain.level === 'none' ? dirs.workDir : '/',
    });
    this.child = child;
    this.exitPromise = new Promise((resolve) => {
      child.once('close', (code, signal) => {
        this.exited = true;
        this.exitInfo = { code, signal };
        for (const listener of this.exitListeners) listener();
        resolve();
      });
    });
    child.once('error', (err) => logger.error({ err, sandbox: this.id }, 'sandbox spawn failed'));
    for (const s of child.stdio) (s as Readable | Writable | null)?.on('error', () => undefined);
    feedInputs(child, launch.inputs);
    this.ctrlIn = child.stdio[3] as Writable;
    const ctrlOut = child.stdio[4] as Readable;
    ctrlOut.on('data', (chunk: Buffer) => this.onControl(chunk));
    child.stdout?.on('data', (chunk: Buffer) => this.onStream('stdout', chunk));
    child.stderr?.on('data', (chunk: Buffer) => this.onStream('stderr', chunk));

    const startTimeout = this.options.startTimeoutMs ?? 15_000;
    const ready = await this.waitEvent('ready', startTimeout);
    if (!ready) {
      const why = this.exited
        ? `the sandbox chain exited during start (code ${this.exitInfo?.code}, signal ${this.exitInfo?.signal}): ${this.startupStderr.trim().slice(0, 2000)}`
        : `the sandbox did not start within ${startTimeout} ms`;
      throw new Error(why);
    }
    for (const pid of this.cgroup?.pids() ?? []) this.chainPids.add(pid);
  }

  /**
   * Kills every process of the sandbox's cgroup except the chain and the interpreter (whose threads
   * live on), from outside: nothing in the sandbox can switch this off. Answers how many it killed.
   */
  async reapStrays(): Promise<number> {
    if (!this.cgroup || this.exited || this.chainPids.size === 0) return 0;
    const killed = new Set<number>();
    for (let round = 0; round < 50; round++) {
      const strays = this.cgroup.pids().filter((pid) => !this.chainPids.has(pid));
      if (strays.length === 0) break;
      for (const pid of strays) {
        try {
          process.kill(pid, 'SIGKILL');
          killed.add(pid);
        } catch {
          // exited meanwhile
        }
      }
      // A killed process leaves the group when it has exited; a forker's children show up next round.
      await new Promise((resolve) => setTimeout(resolve, round < 5 ? 2 : 20).unref());
    }
    return killed.size;
  }

  private startupStderr = '';

  /**
   * Control events are JSON lines; an event with `bin: n` is followed by n raw bytes (file data), handed
   * to its waiter as `BIN` on the event. Bounded: a runner that never ends a line or announces more than
   * the cap is broken or hostile, and is killed.
   */
  private onControl(chunk: Buffer): void {
    this.ctrlChunks.push(chunk);
    this.ctrlLength += chunk.length;
    if (this.ctrlLength > CONTROL_LIMIT) {
      this.ctrlChunks = [];
      this.ctrlLength = 0;
      void this.kill('died');
      return;
    }
    // A long line or payload arrives in many chunks: only look again once it can be complete.
    if (this.ctrlPending ? this.ctrlLength < this.ctrlPending.bin : !chunk.includes(10)) return;
    let buf = this.ctrlChunks.length === 1 ? (this.ctrlChunks[0] as Buffer) : Buffer.concat(this.ctrlChunks);
    for (;;) {
      if (this.ctrlPending) {
        const { event, bin } = this.ctrlPending;
        if (buf.length < bin) break;
        event[BIN] = Buffer.from(buf.subarray(0, bin));
        buf = buf.subarray(bin);
        this.ctrlPending = undefined;
        this.deliver(event);
        continue;
      }
      const nl = buf.indexOf(10);
      if (nl < 0) break;
      const line = buf.subarray(0, nl).toString('utf8');
      buf = buf.subarray(nl + 1);
      let event: unknown;
      try {
        event = JSON.parse(line);
      } catch {
        continue;
      }
      if (typeof event !== 'object' || event === null || Array.isArray(event)) continue;
      const e = event as Record<string | symbol, unknown>;
      if (typeof e.bin === 'number' && Number.isInteger(e.bin) && e.bin >= 0) {
        if (e.bin > CONTROL_LIMIT) {
          void this.kill('died');
          return;
        }
        this.ctrlPending = { event: e, bin: e.bin };
        continue;
      }
      this.deliver(e);
    }
    this.ctrlChunks = buf.length > 0 ? [buf] : [];
    this.ctrlLength = buf.length;
  }

  private deliver(e: Record<string | symbol, unknown>): void {
    const key = typeof e.t === 'string' ? (e.t === 'ready' ? 'ready' : `${e.t}:${String(e.id)}`) : undefined;
    if (!key) return;
    const waiter = this.waiters.get(key);
    if (waiter) {
      this.waiters.delete(key);
      waiter(e);
    }
  }

  private onStream(stream: StreamName, chunk: Buffer): void {
    const c = this.collector;
    if (!c || c.ended[stream]) {
      if (!this.child || this.runs === 0)
        this.startupStderr = (this.startupStderr + chunk.toString('utf8')).slice(-4000);
      return;
    }
    let text = c.carry[stream] + c.decoders[stream].write(chunk);
    c.carry[stream] = '';
    const at = text.indexOf(c.marker);
    let ended = false;
    if (at >= 0) {
      text = text.slice(0, at);
      ended = true;
    } else {
      // Keep back a tail that could be the start of the marker split across reads.
      for (let k = Math.min(c.marker.length - 1, text.length); k > 0; k--) {
        if (c.marker.startsWith(text.slice(text.length - k))) {
          c.carry[stream] = text.slice(text.length - k);
          text = text.slice(0, text.length - k);
          break;
        }
      }
    }
    this.emit(c, stream, text);
    if (ended) {
      c.ended[stream] = true;
      if (c.ended.stdout && c.ended.stderr) c.onEnded?.();
    }
  }

  private emit(c: Collector, stream: StreamName, text: string, limit?: number): void {
    if (!text) return;
    const max = limit ?? Number.POSITIVE_INFINITY;
    const size = Buffer.byteLength(text);
    const cap = Math.min(max, this.options.chain.limits.maxOutputBytes);
    if (c.truncated) {
      c.dropped += size;
      return;
    }
    if (c.bytes + size > cap) {
      const room = Math.max(0, cap - c.bytes);
      const kept = Buffer.from(text).subarray(0, room).toString('utf8');
      c.dropped += size - Buffer.byteLength(kept);
      c.truncated = true;
      c.bytes += Buffer.byteLength(kept);
      const note = `${kept}\n[fleet: output truncated at ${cap} bytes; the rest is dropped]\n`;
      c.text[stream] += note;
      c.onOutput?.(stream, note);
      return;
    }
    c.bytes += size;
    c.text[stream] += text;
    c.onOutput?.(stream, text);
  }

  private waitEvent(key: string, timeoutMs: number): Promise<Record<string, unknown> | undefined> {
    return new Promise((resolve) => {
      const done = (value: Record<string, unknown> | undefined): void => {
        clearTimeout(timer);
        this.exitListeners.delete(onExit);
        this.waiters.delete(key);
        resolve(value);
      };
      const onExit = (): void => done(undefined);
      const timer = setTimeout(() => done(undefined), timeoutMs);
      timer.unref();
      if (this.exited) return done(undefined);
      this.exitListeners.add(onExit);
      this.waiters.set(key, (e) => done(e));
    });
  }

  private send(command: Record<string, unknown>, data?: Buffer): void {
    if (this.exited || !this.ctrlIn || this.ctrlIn.destroyed) return;
    if (data === undefined) {
      this.ctrlIn.write(`${JSON.stringify(command)}\n`);
      return;
    }
    // The bytes follow the line raw (the runner reads exactly `bin` of them).
    this.ctrlIn.write(`${JSON.stringify({ ...command, bin: data.length })}\n`);
    this.ctrlIn.write(data);
  }

  async exec(code: string, options: ExecOptions): Promise<ExecOutcome> {
    if (this.collector) throw new Error('sandbox is busy');
    if (this.exited) throw new Error('sandbox is not running');
    this.runs++;
    const id = `r${++runCounter}`;
    const nonce = randomBytes(12).toString('hex');
    const started = Date.now();
    const before = this.cgroup?.stats();
    const collector: Collector = {
      id,
      marker: `\u0000FLEET-END:${nonce}\u0000`,
      decoders: { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') },
      carry: { stdout: '', stderr: '' },
      ended: { stdout: false, stderr: false },
      text: { stdout: '', stderr: '' },
      bytes: 0,
      dropped: 0,
      truncated: false,
      onOutput: options.onOutput,
      onEnded: undefined,
    };
    this.collector = collector;
    this.killReason = undefined;
    const timers: NodeJS.Timeout[] = [];
    let softSent = false;
    const interrupt = (): void => {
      if (softSent) return;
      softSent = true;
      this.send({ op: 'interrupt', id });
    };
    const onAbort = (): void => {
      const reason: KillReason = options.signal.reason?.code === 'timeout' ? 'timeout' : 'cancelled';
      interrupt();
      // The caller has gone: a grace for KeyboardInterrupt, then the whole tree.
      const t = setTimeout(() => void this.kill(reason), Math.min(options.interruptGraceMs, 1000));
      t.unref();
      timers.push(t);
    };
    try {
      const now = Date.now();
      const soft = setTimeout(
        () => {
          this.killReason ??= 'timeout';
          interrupt();
        },
        Math.max(0, options.softAt - now),
      );
      const hard = setTimeout(() => void this.kill('timeout'), Math.max(0, options.hardAt - now));
      soft.unref();
      hard.unref();
      timers.push(soft, hard);
      if (options.watchdog) {
        const watchdog = options.watchdog;
        const w = setInterval(() => {
          const reason = watchdog();
          if (!reason || this.killReason) return;
          // Soft first (the session keeps its state), the whole tree if the code ignores it.
          this.killReason = reason;
          interrupt();
          const t = setTimeout(() => void this.kill(reason), options.interruptGraceMs);
          t.unref();
          timers.push(t);
        }, 250);
        w.unref();
        timers.push(w);
      }
      if (options.signal.aborted) onAbort();
      else options.signal.addEventListener('abort', onAbort, { once: true });
      this.send({
        op: 'exec',
        id,
        code,
        nonce,
        figures: options.figures ?? true,
        files: options.files ?? false,
      });
      const done = await this.waitEvent(`done:${id}`, Math.max(1, options.hardAt - Date.now() + 5_000));
      if (done) {
        // Wait for the markers: the last bytes of the run may still be in the pipes.
        if (!(collector.ended.stdout && collector.ended.stderr)) {
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, 250);
            t.unref();
            collector.onEnded = () => {
              clearTimeout(t);
              resolve();
            };
          });
        }
      } else if (!this.exited) {
        await this.kill(this.killReason ?? 'timeout');
      }
      if (!done) await this.exitPromise;
      for (const s of ['stdout', 'stderr'] as const) this.emit(collector, s, collector.carry[s]);
      const after = this.cgroup?.stats();
      const cgroup = {
        oomKills: (after?.oomKills ?? 0) - (before?.oomKills ?? 0),
        pidsMaxHits: (after?.pidsMaxHits ?? 0) - (before?.pidsMaxHits ?? 0),
      };
      const base = {
        stdout: collector.text.stdout,
        stderr: collector.text.stderr,
        truncated: collector.truncated,
        droppedBytes: collector.dropped,
        cgroup,
        durationMs: Date.now() - started,
      };
      if (!done) {
        let reason: KillReason = this.killReason ?? 'died';
        if (reason === 'died' && cgroup.oomKills > 0) reason = 'oom';
        if (reason === 'died' && this.exitInfo?.signal === 'SIGXCPU') reason = 'cpu_limit';
        return {
          ...base,
          status: 'killed',
          ok: false,
          interrupted: false,
          syntax: false,
          exitStatus: -1,
          figures: [],
          files: [],
          reaped: 0,
          killReason: reason,
        };
      }
      const figures: Figure[] = [];
      for (const f of Array.isArray(done.figures) ? (done.figures as Record<string, unknown>[]) : []) {
        if (typeof f.name === 'string' && typeof f.data === 'string') {
          figures.push({ name: f.name.replace(/[^\w.-]/g, '_'), data: Buffer.from(f.data, 'base64') });
        }
      }
      return {
        ...base,
        status: 'done',
        ok: done.ok === true,
        interrupted: done.interrupted === true,
        syntax: done.syntax === true,
        exitStatus: typeof done.exitStatus === 'number' ? done.exitStatus : done.ok === true ? 0 : 1,
        ...(typeof done.value === 'string' ? { value: done.value } : {}),
        ...(typeof done.valueType === 'string' ? { valueType: done.valueType } : {}),
        ...(done.error && typeof done.error === 'object' ? { error: sanitizeError(done.error) } : {}),
        figures,
        files: sanitizeFiles(done.files),
        reaped: typeof done.reaped === 'number' ? done.reaped : 0,
        ...(this.killReason ? { killReason: this.killReason } : {}),
      };
    } finally {
      for (const t of timers) clearTimeout(t);
      options.signal.removeEventListener('abort', onAbort);
      this.collector = undefined;
    }
  }

  /** Parses code in the interpreter without running it. */
  async analyze(code: string, timeoutMs: number): Promise<Record<string, unknown> | undefined> {
    const id = `a${++runCounter}`;
    this.send({ op: 'analyze', id, code });
    const event = await this.waitEvent(`analysis:${id}`, timeoutMs);
    return event?.result && typeof event.result === 'object'
      ? (event.result as Record<string, unknown>)
      : undefined;
  }

  /**
   * One workspace file operation, done by the runner as the sandbox uid inside the sandbox's mount
   * namespace (the worker never resolves a workspace path itself). Answers the runner's reply, or
   * undefined when it gave none in time or the sandbox is gone. Only while nothing else runs here.
   */
  async fileOp(
    command: Record<string, unknown>,
    timeoutMs: number,
    data?: Buffer,
  ): Promise<{ reply: Record<string, unknown>; data: Buffer | undefined } | undefined> {
    if (this.exited) return undefined;
    const id = `f${++runCounter}`;
    const answer = this.waitEvent(`fs:${id}`, timeoutMs);
    this.send({ ...command, op: 'fs', id }, data);
    const reply = await answer;
    if (!reply) return undefined;
    const bytes = (reply as Record<symbol, unknown>)[BIN];
    return { reply, data: Buffer.isBuffer(bytes) ? bytes : undefined };
  }

  async ping(timeoutMs: number): Promise<boolean> {
    const id = `p${++runCounter}`;
    this.send({ op: 'ping', id });
    return (await this.waitEvent(`pong:${id}`, timeoutMs)) !== undefined;
  }

  /** Kills the whole tree. Resolves when the launcher is gone. */
  async kill(reason: KillReason = 'stopped'): Promise<void> {
    this.killReason ??= reason;
    if (this.cgroup) this.cgroup.kill();
    const child = this.child;
    if (child?.pid && !this.exited) {
      try {
        // Negative pid: the launcher's process group (sh, prlimit, setpriv, bwrap); bwrap's death takes
        // down its pid namespace, so descendants that left the group die too.
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        try {
          child.kill('SIGKILL');
        } catch {
          // gone
        }
      }
    }
    await this.exitPromise;
  }

  /** Kills and removes everything the sandbox owns except its directories (the owner decides those). */
  async dispose(): Promise<void> {
    await this.kill('stopped');
    if (this.cgroup) {
      this.cgroup.kill();
      await this.cgroup.destroy();
    }
  }

  /** Launches a one-off process in this sandbox's walls (pip), sharing its cgroup. */
  runSidecar(
    argv: string[],
    opts: {
      network: boolean;
      roBinds: [string, string][];
      rwBinds?: [string, string][];
      workspace?: boolean;
      signal: AbortSignal;
      timeoutMs: number;
      onOutput?: (stream: StreamName, data: string) => void;
      maxOutputBytes: number;
    },
  ): Promise<{
    code: number | null;
    signal: NodeJS.Signals | null;
    stdout: string;
    stderr: string;
    timedOut: boolean;
  }> {
    const { chain, dirs } = this.options;
    const launch = buildLaunch(chain, {
      uid: this.uid,
      workDir: dirs.workDir,
      ...workspaceFs(chain, dirs),
      pkgDir: dirs.pkgDir,
      pkgDirWritable: true,
      runnerPath: this.options.runnerPath,
      cgroupProcs: this.cgroup?.procsFiles() ?? [],
      network: opts.network,
      roBinds: opts.roBinds,
      rwBinds: opts.rwBinds ?? [],
      workspace: opts.workspace ?? true,
      argv,
    });
    const stdio = stdioFor(['ignore', 'pipe', 'pipe', 'ignore', 'ignore'], launch.inputs);
    return new Promise((resolve) => {
      const child = spawn(launch.file, launch.args, {
        env: launch.env,
        stdio,
        detached: true,
        cwd: chain.level === 'none' ? dirs.workDir : '/',
      });
      for (const s of child.stdio) (s as Readable | Writable | null)?.on('error', () => undefined);
      feedInputs(child, launch.inputs);
      const out = { stdout: '', stderr: '' };
      let timedOut = false;
      const take = (stream: StreamName) => (chunk: Buffer) => {
        const text = chunk.toString('utf8');
        if (out[stream].length < opts.maxOutputBytes)
          out[stream] += text.slice(0, opts.maxOutputBytes - out[stream].length);
        opts.onOutput?.(stream, text);
      };
      child.stdout?.on('data', take('stdout'));
      child.stderr?.on('data', take('stderr'));
      const killTree = (): void => {
        try {
          if (child.pid) process.kill(-child.pid, 'SIGKILL');
        } catch {
          // gone
        }
      };
      const timer = setTimeout(() => {
        timedOut = true;
        killTree();
      }, opts.timeoutMs);
      timer.unref();
      const onAbort = (): void => killTree();
      opts.signal.addEventListener('abort', onAbort, { once: true });
      child.once('error', (err) => {
        out.stderr += String(err);
      });
      child.once('close', (code, signal) => {
        clearTimeout(timer);
        opts.signal.removeEventListener('abort', onAbort);
        resolve({ code, signal, ...out, timedOut });
      });
    });
  }
}

/** Without a host-mounted tmpfs per workspace, bwrap makes one inside the sandbox (size-limited too). */
function workspaceFs(chain: ChainConfig, dirs: SandboxDirs): { workspaceTmpfsBytes?: number } {
  return dirs.mounted || chain.level === 'none' ? {} : { workspaceTmpfsBytes: chain.limits.workspaceBytes };
}

/** The stdio layout: `base`, then a pipe at every input fd (gaps ignored). */
function stdioFor(base: ('pipe' | 'ignore')[], inputs: Map<number, Buffer>): ('pipe' | 'ignore')[] {
  const stdio = [...base];
  for (const fd of inputs.keys()) {
    while (stdio.length <= fd) stdio.push('ignore');
    stdio[fd] = 'pipe';
  }
  return stdio;
}

function feedInputs(child: ChildProcess, inputs: Map<number, Buffer>): void {
  for (const [fd, data] of inputs) (child.stdio[fd] as Writable | null)?.end(data);
}

function sanitizeFiles(raw: unknown): WrittenFile[] {
  if (!Array.isArray(raw)) return [];
  const out: WrittenFile[] = [];
  for (const f of raw.slice(0, 200) as Record<string, unknown>[]) {
    if (!f || typeof f.path !== 'string' || typeof f.size !== 'number') continue;
    out.push({
      path: f.path.slice(0, 4096),
      size: f.size,
      change: f.change === 'modified' ? 'modified' : 'created',
    });
  }
  return out;
}

function sanitizeError(raw: object): RunError {
  const e = raw as Record<string, unknown>;
  const str = (v: unknown, max: number): string | undefined =>
    typeof v === 'string' ? v.slice(0, max) : undefined;
  const num = (v: unknown): number | null | undefined =>
    typeof v === 'number' ? v : v === null ? null : undefined;
  const out: RunError = { type: str(e.type, 200) ?? 'Error', message: str(e.message, 65_536) ?? '' };
  const tb = str(e.traceback, 65_536);
  if (tb !== undefined) out.traceback = tb;
  const line = num(e.line);
  if (line !== undefined) out.line = line;
  const column = num(e.column);
  if (column !== undefined) out.column = column;
  if (typeof e.errno === 'number') out.errno = e.errno;
  return out;
}
