/**
 * The sandbox runtime: probes the host, picks and self-tests the isolation chain, and creates and
 * destroys sandboxes (directories, uid, cgroup, process). It also keeps the warm pool and the analyzer
 * interpreter. Everything a sandbox owns is released by `destroy()`; `stop()` destroys them all.
 */
import { mkdtempSync, writeFileSync, chmodSync, readdirSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { FleetError } from '../../protocol/errors.js';
import { sweepStaleCgroups } from './cgroups.js';
import { describeChain, ISOLATION_LEVELS, type ChainConfig, type IsolationLevel } from './chain.js';
import { resolveLimits, type SandboxOptions } from './options.js';
import { probeHost, type HostProbe } from './probe.js';
import { pidAlive } from './proc-stats.js';
import { RUNNER_SOURCE } from './runner-source.js';
import { Sandbox } from './sandbox.js';
import { buildSeccompFilter } from './seccomp.js';
import { claimUidRange, type UidLease } from './uid-range.js';
import {
  createSandboxDirs,
  ensureWorkspaceRoot,
  probeWorkspaceMounts,
  removeSandboxDirs,
  sweepStaleDirs,
} from './workspace.js';

export interface SelfTestResult {
  level: IsolationLevel;
  passed: boolean;
  checks: Record<string, boolean>;
  error?: string;
  durationMs: number;
}

export interface IsolationReport {
  level: IsolationLevel | 'unavailable';
  secure: boolean;
  insecure: boolean;
  chain: string[];
  cgroups: string;
  limits: { memory: boolean; pids: boolean; cpu: boolean };
  seccomp: boolean;
  /**
   * How `workspace_mb` is enforced: a tmpfs per workspace mounted by the worker (size and inodes), one
   * made by bwrap inside the sandbox (size only: the worker cannot mount), or not at all (level none).
   */
  workspaceQuota: 'tmpfs' | 'sandbox-tmpfs' | 'none';
  selfTests: SelfTestResult[];
  reason?: string;
}

const SELF_TEST_CODE = `
import ctypes, json, os, socket
r = {}
r["not_root"] = os.getuid() != 0
try:
    open("/etc/shadow").read(1)
    r["no_shadow"] = False
except Exception:
    r["no_shadow"] = True
r["no_root_home"] = not (os.path.isdir("/root") and os.access("/root", os.R_OK))
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=1).close()
    r["no_network"] = False
except Exception:
    r["no_network"] = True
try:
    libc = ctypes.CDLL(None, use_errno=True)
    r["no_userns"] = libc.unshare(0x10000000) != 0
except Exception:
    r["no_userns"] = True
try:
    open("/usr/fleet-self-test", "w")
    r["ro_root"] = False
except Exception:
    r["ro_root"] = True
try:
    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close()
    r["no_netlink"] = False
except Exception:
    r["no_netlink"] = True
r["own_hostname"] = socket.gethostname() == "fleet-sandbox"
print(json.dumps(r))
`;

/** Removes the runtime directories (`fleet-py-<pid>-…`, the runner script) of workers that died. */
function sweepStaleRuntimeDirs(dir: string): void {
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = /^fleet-py-(\d+)-/.exec(name);
    if (m && !pidAlive(Number(m[1]))) rmSync(join(dir, name), { recursive: true, force: true });
  }
}

export class SandboxRuntime {
  private readonly live = new Set<Sandbox>();
  private readonly uidsInUse = new Set<number>();
  private nextUid = 0;
  private workspaceMounts = false;
  /** This worker's own block of sandbox uids (no other worker on the host uses them). */
  uids: UidLease | undefined;
  private counter = 0;
  private readonly pool: Sandbox[] = [];
  private filling = false;
  private stopped = false;
  private analyzer: Sandbox | undefined;
  private analyzerQueue: Promise<unknown> = Promise.resolve();
  readonly runnerPath: string;
  readonly workspaceRoot: string;
  chain: ChainConfig | undefined;
  report: IsolationReport;
  probe: HostProbe | undefined;
  stats = { created: 0, destroyed: 0, poolHits: 0, poolMisses: 0, startMsTotal: 0 };

  constructor(
    readonly options: SandboxOptions,
    workspace: string,
    private readonly logger: Logger,
  ) {
    this.workspaceRoot = ensureWorkspaceRoot(workspace);
    sweepStaleRuntimeDirs(tmpdir());
    // The pid in the name lets a later worker, or a test, tell whose it is.
    const runtimeDir = mkdtempSync(join(tmpdir(), `fleet-py-${process.pid}-`));
    chmodSync(runtimeDir, 0o755);
    this.runnerPath = join(runtimeDir, 'runner.py');
    writeFileSync(this.runnerPath, RUNNER_SOURCE, { mode: 0o644 });
    this.report = {
      level: 'unavailable',
      secure: false,
      insecure: false,
      chain: [],
      cgroups: 'none',
      limits: { memory: false, pids: false, cpu: false },
      seccomp: false,
      workspaceQuota: 'none',
      selfTests: [],
    };
  }

  /** Probes, self-tests and picks a chain. Throws only for a broken interpreter; no isolation is a state. */
  async init(): Promise<void> {
    const o = this.options;
    this.uids = claimUidRange({
      base: o.uid_base,
      total: o.uid_count,
      perWorker: o.uids_per_worker ?? Math.max(64, 2 * (o.max_sessions + o.pool_size) + 16),
    });
    this.logger.info(
      { firstUid: this.uids.first, uids: this.uids.count, lock: this.uids.lockFile },
      'claimed a block of sandbox uids',
    );
    const probe = probeHost(o.python, o.bwrap, this.uids.first);
    this.probe = probe;
    if (!probe.python.ok)
      throw new FleetError('config_invalid', `python_sandbox.sandbox.python: ${o.python} does not run`);
    if (!probe.prlimit) throw new FleetError('sandbox_unavailable', 'prlimit (util-linux) is not installed');
    sweepStaleDirs(this.workspaceRoot);
    this.workspaceMounts = probeWorkspaceMounts(this.workspaceRoot);
    this.report.workspaceQuota = this.workspaceMounts ? 'tmpfs' : 'sandbox-tmpfs';
    if (!this.workspaceMounts)
      this.logger.warn(
        'cannot mount a filesystem per workspace (not root?): bwrap makes a size-limited one inside each sandbox; workspace_inodes is not enforced',
      );
    const removedGroups = await sweepStaleCgroups(probe.cgroups);
    if (removedGroups > 0) this.logger.info({ removedGroups }, 'removed cgroups left by a dead worker');

    const candidates: IsolationLevel[] = [];
    const bwrapOk = probe.bwrap.ok && probe.bwrap.userns && (!probe.root || probe.setpriv);
    const cgOk = probe.cgroupCaps.memory && probe.cgroupCaps.pids && probe.root;
    if (bwrapOk && cgOk) candidates.push('strong');
    if (bwrapOk) candidates.push('namespaces');
    const floor = o.isolation === 'auto' ? (o.allow_insecure ? 'none' : 'namespaces') : o.isolation;
    const allowed = ISOLATION_LEVELS.slice(0, ISOLATION_LEVELS.indexOf(floor) + 1);
    if (o.isolation !== 'auto' && o.isolation !== 'none' && !candidates.includes(o.isolation)) {
      this.report.reason = `isolation "${o.isolation}" is not available here: ${this.unavailableReason(probe)}`;
    }
    const limits = resolveLimits(o);
    const seccomp = probe.seccomp ? buildSeccompFilter() : undefined;
    for (const level of candidates.filter((l) => allowed.includes(l))) {
      const chain: ChainConfig = {
        level,
        python: o.python,
        bwrap: o.bwrap,
        dropUid: probe.root && probe.setpriv,
        cgroups: level === 'strong' ? probe.cgroups : undefined,
        seccomp,
        limits,
      };
      const result = await this.selfTest(chain);
      this.report.selfTests.push(result);
      if (result.passed) {
        this.useChain(chain, probe);
        return;
      }
      this.logger.warn(
        { selfTest: result },
        `isolation level ${level} failed its self-test; trying a weaker one`,
      );
    }
    if (allowed.includes('none') && o.allow_insecure) {
      const chain: ChainConfig = {
        level: 'none',
        python: o.python,
        bwrap: o.bwrap,
        dropUid: probe.root && probe.setpriv,
        cgroups: undefined,
        seccomp: undefined,
        limits,
      };
      this.useChain(chain, probe);
      this.report.insecure = true;
      this.report.reason ??= this.unavailableReason(probe);
      this.logger.error(
        { isolation: this.report },
        'INSECURE MODE: python-sandbox runs untrusted code WITHOUT isolation (allow_insecure is set). Never expose this worker.',
      );
      return;
    }
    this.report.reason ??= this.unavailableReason(probe);
    this.logger.error(
      { isolation: this.report },
      'no working isolation: python-sandbox refuses to execute code',
    );
  }

  private unavailableReason(probe: HostProbe): string {
    const why: string[] = [];
    if (!probe.bwrap.ok) why.push(`bwrap not found at ${probe.bwrap.path} (apt install bubblewrap)`);
    else if (!probe.bwrap.userns)
      why.push(`bwrap cannot create user namespaces: ${probe.bwrap.error ?? 'unknown'}`);
    if (probe.root && !probe.setpriv) why.push('setpriv missing (util-linux)');
    if (!probe.cgroupCaps.memory || !probe.cgroupCaps.pids)
      why.push(`no writable memory+pids cgroups (${probe.cgroups.mode})`);
    for (const t of this.report.selfTests)
      if (!t.passed) why.push(`${t.level} self-test failed: ${t.error ?? JSON.stringify(t.checks)}`);
    return why.join('; ') || 'unknown';
  }

  private useChain(chain: ChainConfig, probe: HostProbe): void {
    this.chain = chain;
    this.report.level = chain.level;
    this.report.secure = chain.level !== 'none';
    this.report.chain = describeChain(chain);
    this.report.cgroups = chain.level === 'strong' ? probe.cgroups.mode : 'none';
    this.report.limits = {
      memory: chain.level === 'strong' && probe.cgroupCaps.memory,
      pids: chain.level === 'strong' && probe.cgroupCaps.pids,
      cpu: chain.level === 'strong' && probe.cgroupCaps.cpu,
    };
    this.report.seccomp = chain.level !== 'none' && chain.seccomp !== undefined;
    if (chain.level === 'none') this.report.workspaceQuota = 'none';
    this.logger.info({ isolation: this.report }, `python-sandbox isolation: ${chain.level}`);
  }

  private async selfTest(chain: ChainConfig): Promise<SelfTestResult> {
    const started = Date.now();
    let server: Server | undefined;
    let sandbox: Sandbox | undefined;
    try {
      server = createServer((s) => s.destroy());
      const port = await new Promise<number>((resolve, reject) => {
        server?.once('error', reject);
        server?.listen(0, '127.0.0.1', () => {
          const addr = server?.address();
          resolve(typeof addr === 'object' && addr ? addr.port : 0);
        });
      });
      sandbox = await this.spawnSandbox(chain, []);
      const out = await sandbox.exec(SELF_TEST_CODE.replace('PORT', String(port)), {
        softAt: Date.now() + 10_000,
        hardAt: Date.now() + 12_000,
        signal: new AbortController().signal,
        interruptGraceMs: 500,
        figures: false,
      });
      const line = out.stdout.trim().split('\n').pop() ?? '';
      let checks: Record<string, boolean> = {};
      try {
        checks = JSON.parse(line) as Record<string, boolean>;
      } catch {
        return {
          level: chain.level,
          passed: false,
          checks,
          error: `self-test printed no verdict: ${out.stderr.slice(0, 500)}`,
          durationMs: Date.now() - started,
        };
      }
      if (chain.level === 'strong') checks.in_cgroup = sandbox.processIds().length > 0;
      const passed = Object.values(checks).every(Boolean) && Object.keys(checks).length >= 6;
      return { level: chain.level, passed, checks, durationMs: Date.now() - started };
    } catch (err) {
      return {
        level: chain.level,
        passed: false,
        checks: {},
        error: (err as Error).message.slice(0, 1000),
        durationMs: Date.now() - started,
      };
    } finally {
      if (sandbox) await this.destroy(sandbox);
      server?.close();
    }
  }

  get canExecute(): boolean {
    return this.chain !== undefined;
  }

  requireChain(): ChainConfig {
    if (!this.chain) {
      throw new FleetError(
        'sandbox_unavailable',
        `python-sandbox refuses to run code: no working isolation (${this.report.reason ?? 'unknown'}). Set python_sandbox.sandbox.allow_insecure to run without it (never on a shared host).`,
      );
    }
    return this.chain;
  }

  private allocateUid(): number {
    if (!this.uids) throw new FleetError('sandbox_unavailable', 'python-sandbox is not started');
    const { first, count } = this.uids;
    for (let i = 0; i < count; i++) {
      const uid = first + ((this.nextUid + i) % count);
      if (!this.uidsInUse.has(uid)) {
        this.nextUid = (this.nextUid + i + 1) % count;
        this.uidsInUse.add(uid);
        return uid;
      }
    }
    throw new FleetError('busy', 'every sandbox uid is in use');
  }

  /** Sandboxes being started: stop() waits for them so none is left behind (mounted) after it. */
  private readonly spawning = new Set<Promise<Sandbox>>();

  private spawnSandbox(chain: ChainConfig, preload: string[]): Promise<Sandbox> {
    const p = this.startSandbox(chain, preload);
    this.spawning.add(p);
    void p.then(
      () => this.spawning.delete(p),
      () => this.spawning.delete(p),
    );
    return p;
  }

  private async startSandbox(chain: ChainConfig, preload: string[]): Promise<Sandbox> {
    const id = `${(++this.counter).toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    const uid = this.allocateUid();
    const started = Date.now();
    let dirs;
    try {
      const limits = chain.limits;
      dirs = await createSandboxDirs(
        this.workspaceRoot,
        id,
        uid,
        chain.dropUid,
        this.workspaceMounts ? { bytes: limits.workspaceBytes, inodes: limits.workspaceInodes } : undefined,
      );
      const sandbox = await Sandbox.start({
        id,
        uid,
        dirs,
        chain,
        runnerPath: this.runnerPath,
        preload,
        logger: this.logger,
      });
      this.live.add(sandbox);
      this.stats.created++;
      this.stats.startMsTotal += Date.now() - started;
      return sandbox;
    } catch (err) {
      this.uidsInUse.delete(uid);
      if (dirs) await removeSandboxDirs(dirs).catch(() => undefined);
      throw new FleetError('sandbox_unavailable', `could not start a sandbox: ${(err as Error).message}`, {
        retryable: true,
      });
    }
  }

  /** A fresh sandbox: from the warm pool when one is ready, else started now (cold). */
  async acquire(): Promise<Sandbox> {
    const chain = this.requireChain();
    while (this.pool.length > 0) {
      const sandbox = this.pool.shift() as Sandbox;
      if (sandbox.alive) {
        this.stats.poolHits++;
        this.refill();
        return sandbox;
      }
      await this.destroy(sandbox);
    }
    this.stats.poolMisses++;
    this.refill();
    return this.spawnSandbox(chain, []);
  }

  private readonly destroying = new Set<Promise<void>>();

  /** Kills a sandbox and removes everything it owned. Idempotent. */
  destroy(sandbox: Sandbox): Promise<void> {
    const p = this.teardown(sandbox);
    this.destroying.add(p);
    const done = () => this.destroying.delete(p);
    void p.then(done, done);
    return p;
  }

  private async teardown(sandbox: Sandbox): Promise<void> {
    const wasLive = this.live.delete(sandbox);
    await sandbox.dispose();
    await removeSandboxDirs(sandbox.dirs).catch((err: unknown) =>
      this.logger.warn({ err, sandbox: sandbox.id }, 'could not remove sandbox dirs'),
    );
    this.uidsInUse.delete(sandbox.uid);
    if (wasLive) this.stats.destroyed++;
  }

  /** Keeps `pool_size` interpreters started, one at a time so a refill never starves running tasks. */
  refill(): void {
    if (this.filling || this.stopped || !this.chain) return;
    this.filling = true;
    void (async () => {
      try {
        while (!this.stopped && this.chain && this.pool.length < this.options.pool_size) {
          try {
            const sandbox = await this.spawnSandbox(this.chain, this.options.preload);
            if (this.stopped) {
              await this.destroy(sandbox);
              return;
            }
            this.pool.push(sandbox);
          } catch (err) {
            this.logger.error({ err }, 'could not start a pooled sandbox');
            return;
          }
        }
      } finally {
        this.filling = false;
      }
    })();
  }

  /** Resolves once the pool is full (tests and benchmarks wait for a warm state). */
  async warm(timeoutMs = 30_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    this.refill();
    while (this.chain && this.pool.length < this.options.pool_size && Date.now() < until && !this.stopped) {
      await new Promise((resolve) => setTimeout(resolve, 20).unref());
    }
  }

  /** Runs the analyzer in a long-lived sandbox that never executes user code; one analysis at a time. */
  analyze(code: string, timeoutMs: number): Promise<Record<string, unknown>> {
    const run = async (): Promise<Record<string, unknown>> => {
      const chain = this.requireChain();
      if (!this.analyzer || !this.analyzer.alive) {
        if (this.analyzer) await this.destroy(this.analyzer);
        this.analyzer = await this.spawnSandbox(chain, []);
      }
      const result = await this.analyzer.analyze(code, timeoutMs);
      if (!result) {
        const broken = this.analyzer;
        this.analyzer = undefined;
        await this.destroy(broken);
        throw new FleetError('timeout', `code analysis did not finish within ${timeoutMs} ms`);
      }
      return result;
    };
    const next = this.analyzerQueue.then(run, run);
    this.analyzerQueue = next.catch(() => undefined);
    return next;
  }

  poolState(): { ready: number; target: number; filling: boolean } {
    return { ready: this.pool.length, target: this.options.pool_size, filling: this.filling };
  }

  liveCount(): number {
    return this.live.size;
  }

  async stop(): Promise<void> {
    // The waits below (a cgroup still emptying, a tree still dying) use unref'd timers; during a signal
    // stop nothing else may be keeping the event loop alive, and Node would exit with the work half done.
    const keepAlive = setInterval(() => undefined, 1000);
    try {
      await this.stopAll();
    } finally {
      clearInterval(keepAlive);
    }
  }

  private async stopAll(): Promise<void> {
    this.stopped = true;
    while (this.spawning.size > 0) await Promise.allSettled([...this.spawning]);
    const all = [...this.live];
    this.pool.length = 0;
    this.analyzer = undefined;
    await Promise.all(all.map((s) => this.destroy(s)));
    // Teardowns started elsewhere (a pooled sandbox that finished starting after the stop) end first.
    while (this.destroying.size > 0) await Promise.allSettled([...this.destroying]);
    rmSync(join(this.runnerPath, '..'), { recursive: true, force: true });
    this.uids?.release();
  }
}
