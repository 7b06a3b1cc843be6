/**
 * The spec's `BrowserManager` and `ChromeInstance`: a pool of Chromium processes driven by playwright-core.
 *
 * Lifecycle of an instance (puppeteer-cluster's init / get / release / repair, made explicit):
 *   launch → ready (idle ⇄ busy) → draining (after N tasks or over its PSS limit: the replacement is launched
 *   first, the old one closes when its last task ends) → closed;  or  → crashed (disconnect) → relaunched.
 * A task gets a fresh browser context on an instance (never the shared default one), so cookies, storage and
 * cache never cross tasks; several contexts share an instance.
 *
 * Processes: Playwright spawns Chromium as the leader of its own process group; every forced stop kills the
 * group. The browser is launched through `setpriv --pdeathsig KILL` when available, and it also exits when its
 * DevTools pipe closes, so it dies with the worker even on SIGKILL. Each instance gets its own directory (profile,
 * TMPDIR, downloads) under the pool root, removed on close; directories of dead workers are swept at start.
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { FleetError } from '../../protocol/errors.js';
import {
  MemoryCgroup,
  probeMemoryCgroup,
  sweepMemoryCgroups,
  type MemoryCgroupRoot,
} from '../common/memory-cgroup.js';
import type { BrowserOptions } from './options.js';
import { BrowserNetworkNamespace, type NamespaceListener } from './network-namespace.js';
import { PolicyProxy } from './policy-proxy.js';
import { findChildByMarker, groupPssBytes, isAlive, killGroup } from './process-tree.js';
import type { UrlPolicy } from './url-policy.js';

export interface BrowserProcess {
  pid: number;
  /** Playwright makes the browser a group leader, so pgid === pid. */
  pgid: number;
}

export type InstanceStatus = 'idle' | 'busy' | 'error';

/** One Chromium process (the spec's ChromeInstance). `process` is a pid handle: Playwright owns the ChildProcess. */
export interface ChromeInstance {
  id: string;
  process: BrowserProcess;
  status: InstanceStatus;
  /** PSS of the whole process group, bytes, as of the last sample. */
  memoryUsage: number;
  /** Tasks this instance has taken since launch. */
  taskCount: number;
  createdAt: Date;
  activeTasks: number;
  draining: boolean;
  browser: Browser;
  /** Aborted (reason: FleetError browser_crashed) when the browser dies or is killed under its tasks. */
  crashed: AbortSignal;
  dir: string;
}

interface Internal extends ChromeInstance {
  defaultContext: BrowserContext;
  /** The kernel's memory limit for this browser's whole tree (absent: the sampler is all there is). */
  cgroup: MemoryCgroup | undefined;
  /** OOM kills already reported (a crash report says whether a new one happened). */
  oomSeen: number;
  crash: AbortController;
  intentional: boolean;
  closing: Promise<void> | undefined;
}

export interface PoolSnapshot {
  size: number;
  /** Where the per-instance memory limit is held: a memory cgroup per browser, or only the PSS sampler. */
  memoryLimit: 'cgroup-v1' | 'cgroup-v2' | 'sampler';
  /** `namespace`: the browsers can reach nothing but the task proxies (network-namespace.ts). */
  network: 'namespace' | 'host';
  ready: number;
  launching: number;
  restarts: number;
  crashes: number;
  recycled: number;
  instances: Array<
    Pick<ChromeInstance, 'id' | 'status' | 'memoryUsage' | 'taskCount' | 'activeTasks' | 'draining'> & {
      pid: number;
      createdAt: string;
    }
  >;
}

export interface BrowserPoolDeps {
  logger: Logger;
  policy: UrlPolicy;
}

const ROOT_NAME = 'fleet-browser';
const CGROUP_PREFIX = 'fleet-browser-';

export class BrowserManager {
  private readonly instances: Internal[] = [];
  private readonly waiters: Array<() => void> = [];
  private launching = 0;
  private seq = 0;
  private stopping = false;
  private timer: NodeJS.Timeout | undefined;
  private wrapper: string | undefined;
  private denyProxy: PolicyProxy;
  private netns: BrowserNetworkNamespace | undefined;
  private readonly recentCrashes: number[] = [];
  private cgroupRoot: MemoryCgroupRoot | undefined;
  readonly root: string;
  stats = { restarts: 0, crashes: 0, recycled: 0 };

  constructor(
    private readonly options: BrowserOptions,
    private readonly deps: BrowserPoolDeps,
  ) {
    this.root = options.temp_dir ?? join(tmpdir(), ROOT_NAME);
    this.denyProxy = new PolicyProxy(deps.policy, 0, true);
  }

  get maxInstances(): number {
    return this.options.pool_size;
  }

  /** Launches the pool. Throws (with the binary path) when not a single browser starts. */
  async start(): Promise<void> {
    if (!existsSync(this.options.executable_path)) {
      throw new FleetError(
        'config_invalid',
        `browser_config.executable_path: no Chromium at ${this.options.executable_path} (apt install chromium-headless-shell, or set BROWSER_EXECUTABLE_PATH)`,
      );
    }
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await this.sweep();
    if (this.options.memory_cgroup) {
      this.cgroupRoot = probeMemoryCgroup();
      if (this.cgroupRoot) await sweepMemoryCgroups(this.cgroupRoot, CGROUP_PREFIX, isAlive);
      else
        this.deps.logger.warn(
          'no writable memory cgroup (v1 or v2): the memory limit is only sampled, not enforced by the kernel',
        );
    }
    if (this.options.network_namespace) {
      const ns = await BrowserNetworkNamespace.start(this.root);
      if (ns instanceof BrowserNetworkNamespace) {
        this.netns = ns;
        this.denyProxy = new PolicyProxy(this.deps.policy, 0, true, this.proxyListener);
      } else {
        this.deps.logger.warn(
          { why: ns.unavailable },
          "no network namespace for the browsers: they share the worker's network (the switches still close the transports around the proxy)",
        );
      }
    }
    await this.prepareWrapper();
    await this.denyProxy.listen();
    const results = await Promise.allSettled(
      Array.from({ length: this.options.pool_size }, () => this.launch()),
    );
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length === results.length) {
      await this.stop();
      const reason = failed[0]?.reason as Error | undefined;
      throw new FleetError('internal', `no browser could be launched: ${reason?.message ?? 'unknown error'}`);
    }
    for (const f of failed) this.scheduleRelaunch((f.reason as Error).message);
    this.timer = setInterval(() => void this.cleanupMemory(), this.options.memory_check_interval);
    this.timer.unref();
  }

  /** Removes directories left by workers that died (their pid is gone). */
  private async sweep(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch {
      return;
    }
    await Promise.all(
      names.map(async (name) => {
        const owner = Number(/^(\d+)-/.exec(name)?.[1]);
        if (!Number.isInteger(owner) || owner === process.pid || isAlive(owner)) return;
        await rm(join(this.root, name), { recursive: true, force: true }).catch(() => undefined);
      }),
    );
  }

  /**
   * The launcher Playwright runs instead of Chromium: it joins the instance's memory cgroup (so every Chromium
   * process is born inside it) and asks for SIGKILL when the worker dies, then execs the real browser.
   */
  private async prepareWrapper(): Promise<void> {
    const pdeath = this.options.die_with_worker && existsSync('/usr/bin/setpriv');
    if (!pdeath && !this.cgroupRoot && !this.netns) return;
    const netns = this.netns ? `${this.netns.nsenter} --net=${this.netns.path} -- ` : '';
    const file = join(this.root, `${process.pid}-launch.sh`);
    await writeFile(
      file,
      [
        '#!/bin/sh',
        'if [ -n "$FLEET_CGROUP_PROCS" ]; then echo $$ > "$FLEET_CGROUP_PROCS" || exit 70; fi',
        `exec ${netns}${pdeath ? '/usr/bin/setpriv --pdeathsig KILL -- ' : ''}"$FLEET_REAL_BROWSER" "$@"`,
        '',
      ].join('\n'),
    );
    await chmod(file, 0o700);
    this.wrapper = file;
  }

  private async launch(): Promise<Internal> {
    this.launching++;
    const id = `chrome-${++this.seq}`;
    const dir = join(this.root, `${process.pid}-${this.seq}-${randomBytes(3).toString('hex')}`);
    let cgroup: MemoryCgroup | undefined;
    try {
      if (this.cgroupRoot) {
        cgroup = MemoryCgroup.create(
          this.cgroupRoot,
          `${CGROUP_PREFIX}${process.pid}-${this.seq}-${randomBytes(3).toString('hex')}`,
          this.limitBytes(),
        );
      }
      await mkdir(join(dir, 'tmp'), { recursive: true, mode: 0o700 });
      await mkdir(join(dir, 'downloads'), { recursive: true, mode: 0o700 });
      const profile = join(dir, 'profile');
      const env: Record<string, string> = {};
      for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
      Object.assign(env, {
        TMPDIR: join(dir, 'tmp'),
        FLEET_BROWSER_DIR: dir,
        FLEET_REAL_BROWSER: this.options.executable_path,
        ...(cgroup ? { FLEET_CGROUP_PROCS: cgroup.procsFile } : {}),
      });
      const defaultContext = await chromium.launchPersistentContext(profile, {
        executablePath: this.wrapper ?? this.options.executable_path,
        args: this.options.flags,
        headless: true,
        chromiumSandbox: false,
        handleSIGINT: false,
        handleSIGTERM: false,
        handleSIGHUP: false,
        timeout: this.options.launch_timeout,
        env,
        // Outside a task nothing may load: the default context goes through a proxy that refuses everything.
        proxy: { server: this.denyProxy.url },
        serviceWorkers: 'block',
        acceptDownloads: false,
        // A task that accepts downloads gets them here, inside the instance's dir (Playwright's default is a
        // directory of its own under the OS temp dir, outside the pool's sweep).
        downloadsPath: join(dir, 'downloads'),
      });
      const browser = defaultContext.browser();
      if (!browser) throw new Error('playwright returned no browser for the persistent context');
      const pid = (await findChildByMarker(process.pid, dir)) ?? 0;
      const crash = new AbortController();
      const inst: Internal = {
        id,
        process: { pid, pgid: pid },
        status: 'idle',
        memoryUsage: 0,
        taskCount: 0,
        createdAt: new Date(),
        activeTasks: 0,
        draining: false,
        browser,
        crashed: crash.signal,
        dir,
        defaultContext,
        cgroup,
        oomSeen: 0,
        crash,
        intentional: false,
        closing: undefined,
      };
      browser.on('disconnected', () => this.onDisconnected(inst));
      if (this.stopping) {
        await this.closeInstance(inst);
        throw new FleetError('draining', 'the browser pool is stopping');
      }
      this.instances.push(inst);
      this.deps.logger.info({ instance: id, pid }, 'browser launched');
      this.wake();
      return inst;
    } catch (err) {
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
      await cgroup?.destroy();
      throw err;
    } finally {
      this.launching--;
    }
  }

  private scheduleRelaunch(why: string): void {
    if (this.stopping || !this.options.auto_restart) return;
    const now = Date.now();
    this.recentCrashes.push(now);
    while (this.recentCrashes.length && now - this.recentCrashes[0]! > 60_000) this.recentCrashes.shift();
    // Crash-loop backoff: immediate for the first few, then up to 30 s apart.
    const n = this.recentCrashes.length;
    const delay = n <= 3 ? 0 : Math.min(30_000, 500 * 2 ** (n - 3));
    this.deps.logger.warn({ why, delay }, 'relaunching a browser');
    const t = setTimeout(() => {
      if (this.stopping || this.liveCount() >= this.options.pool_size) return;
      this.stats.restarts++;
      this.launch().catch((err: Error) => this.scheduleRelaunch(err.message));
    }, delay);
    t.unref();
  }

  private liveCount(): number {
    return this.instances.filter((i) => !i.draining && i.status !== 'error').length + this.launching;
  }

  private onDisconnected(inst: Internal): void {
    killGroup(inst.process.pgid);
    const idx = this.instances.indexOf(inst);
    if (idx >= 0) this.instances.splice(idx, 1);
    void rm(inst.dir, { recursive: true, force: true }).catch(() => undefined);
    void inst.cgroup?.destroy();
    if (inst.intentional) return;
    this.stats.crashes++;
    inst.status = 'error';
    this.deps.logger.error(
      { instance: inst.id, pid: inst.process.pid, active: inst.activeTasks },
      'browser crashed',
    );
    inst.crash.abort(
      new FleetError('browser_crashed', `browser ${inst.id} died under the task`, { retryable: true }),
    );
    if (this.liveCount() < this.options.pool_size) this.scheduleRelaunch(`${inst.id} crashed`);
  }

  /**
   * Launches browsers until the pool is at its size again, and never past it: every path that takes an
   * instance out of service (recycle, forced restart, crash relaunch) comes here or checks the same count, and
   * `launch` counts itself as launching before its first await, so two paths cannot both fill one gap.
   */
  private topUp(): void {
    while (!this.stopping && this.liveCount() < this.options.pool_size) {
      this.launch().catch((err: Error) => this.scheduleRelaunch(err.message));
    }
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  private pick(): Internal | undefined {
    let best: Internal | undefined;
    for (const i of this.instances) {
      if (i.draining || i.status === 'error' || i.closing) continue;
      if (!best || i.activeTasks < best.activeTasks) best = i;
    }
    return best;
  }

  /** The least-loaded ready instance, waiting (until `signal`) while none is ready (all relaunching). */
  async getAvailableInstance(signal?: AbortSignal): Promise<ChromeInstance> {
    for (;;) {
      if (this.stopping) throw new FleetError('draining', 'the browser pool is stopping');
      signal?.throwIfAborted();
      const inst = this.pick();
      if (inst) {
        inst.activeTasks++;
        inst.taskCount++;
        inst.status = 'busy';
        return inst;
      }
      if (this.launching === 0 && this.instances.length === 0) this.scheduleRelaunch('no instance left');
      await new Promise<void>((resolve, reject) => {
        const onAbort = () =>
          reject(signal?.reason instanceof Error ? signal.reason : new FleetError('cancelled', 'aborted'));
        this.waiters.push(() => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        });
        signal?.addEventListener('abort', onAbort, { once: true });
      });
    }
  }

  /** Ends a task's use of an instance; recycles it after N tasks or over its memory limit. */
  async releaseInstance(instance: ChromeInstance): Promise<void> {
    const inst = this.instances.find((i) => i === instance) ?? (instance as Internal);
    inst.activeTasks = Math.max(0, inst.activeTasks - 1);
    if (inst.status !== 'error') inst.status = inst.activeTasks > 0 ? 'busy' : 'idle';
    if (inst.draining) {
      if (inst.activeTasks === 0) await this.closeInstance(inst);
      return;
    }
    if (inst.taskCount >= this.options.max_tasks_per_instance) this.recycle(inst, 'task count');
    else if (inst.memoryUsage > this.limitBytes()) this.recycle(inst, 'memory');
  }

  private limitBytes(): number {
    return this.options.memory_limit_mb * 1024 * 1024;
  }

  /** Drain: take no new task, launch the replacement first, close once the last task is done. */
  private recycle(inst: Internal, reason: string): void {
    if (inst.draining || this.stopping) return;
    inst.draining = true;
    this.stats.recycled++;
    this.deps.logger.info(
      { instance: inst.id, reason, taskCount: inst.taskCount, pss: inst.memoryUsage },
      'recycling browser',
    );
    this.topUp();
    if (inst.activeTasks === 0) void this.closeInstance(inst);
  }

  /** Forced restart: kills the instance now (its tasks fail with a retryable browser_crashed) and launches another. */
  async restartInstance(instanceId: string): Promise<void> {
    const inst = this.instances.find((i) => i.id === instanceId);
    if (!inst) return;
    inst.draining = true;
    inst.crash.abort(
      new FleetError('browser_crashed', `browser ${inst.id} was restarted`, { retryable: true }),
    );
    await this.closeInstance(inst, { force: true });
    this.stats.restarts++;
    this.topUp();
  }

  /**
   * Samples PSS (a report: with a memory cgroup the kernel holds the limit, killing the renderer that goes over
   * it and nothing else). Over the limit an instance is drained and replaced; without a cgroup, one far over it
   * is restarted at once, the only guard left.
   */
  async cleanupMemory(): Promise<void> {
    for (const inst of [...this.instances]) {
      if (inst.closing || !inst.process.pid) continue;
      inst.memoryUsage = await groupPssBytes(inst.process.pgid);
      if (!inst.cgroup && inst.memoryUsage > 2 * this.limitBytes() && inst.activeTasks > 0) {
        this.deps.logger.warn(
          { instance: inst.id, pss: inst.memoryUsage },
          'browser far over its memory limit; restarting',
        );
        await this.restartInstance(inst.id);
      } else if (inst.memoryUsage > this.limitBytes()) {
        this.recycle(inst, 'memory');
      }
    }
  }

  private closeInstance(inst: Internal, opts: { force?: boolean } = {}): Promise<void> {
    if (inst.closing) return inst.closing;
    inst.intentional = true;
    inst.closing = (async () => {
      if (!opts.force) {
        const closed = inst.browser.close().then(
          () => true,
          () => false,
        );
        const timer = new Promise<boolean>((r) =>
          setTimeout(() => r(false), this.options.close_timeout).unref(),
        );
        await Promise.race([closed, timer]);
      }
      // Always: a graceful close can leave a renderer behind, and a forced one is the point.
      killGroup(inst.process.pgid);
      const idx = this.instances.indexOf(inst);
      if (idx >= 0) this.instances.splice(idx, 1);
      await rm(inst.dir, { recursive: true, force: true }).catch(() => undefined);
      await inst.cgroup?.destroy();
      this.deps.logger.info({ instance: inst.id }, 'browser closed');
      this.wake();
    })();
    return inst.closing;
  }

  /** Closes every browser and kills their groups; removes their directories. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearInterval(this.timer);
    this.wake();
    await Promise.all(this.instances.map((i) => this.closeInstance(i)));
    // A launch in flight registers after this point; it sees `stopping` and closes itself.
    for (let i = 0; i < 100 && this.launching > 0; i++) await new Promise((r) => setTimeout(r, 50));
    await this.denyProxy.close();
    this.netns?.stop();
    if (this.wrapper) await rm(this.wrapper, { force: true }).catch(() => undefined);
  }

  /** Facts about an instance for a page-crash report (whether its memory cgroup killed something). */
  crashDetails(instance: ChromeInstance): Record<string, unknown> {
    const inst = instance as Internal;
    if (!inst.cgroup) return { memoryLimit: 'sampler' };
    const kills = inst.cgroup.oomKills();
    const oomKilled = kills > inst.oomSeen;
    inst.oomSeen = kills;
    return { oomKilled, limitMb: this.options.memory_limit_mb };
  }

  /** Where task proxies listen: in the browsers' network namespace when they have one. */
  get proxyListener(): (() => Promise<NamespaceListener>) | undefined {
    const ns = this.netns;
    return ns ? () => ns.listen() : undefined;
  }

  /** The cgroup version holding the memory limit, or 'sampler'. */
  get memoryLimitMode(): PoolSnapshot['memoryLimit'] {
    return this.cgroupRoot ? `cgroup-${this.cgroupRoot.version}` : 'sampler';
  }

  /** Pids of live browser groups (tests count leftovers against these). */
  pids(): number[] {
    return this.instances.map((i) => i.process.pid).filter((p) => p > 0);
  }

  /** Processes of the pool that are not browsers (the network namespace's holder). */
  helperPids(): number[] {
    const pid = this.netns?.pid;
    return pid ? [pid] : [];
  }

  list(): readonly ChromeInstance[] {
    return this.instances;
  }

  readyCount(): number {
    return this.instances.filter((i) => !i.draining && !i.closing && i.status !== 'error').length;
  }

  snapshot(): PoolSnapshot {
    return {
      size: this.options.pool_size,
      memoryLimit: this.memoryLimitMode,
      network: this.netns ? 'namespace' : 'host',
      ready: this.readyCount(),
      launching: this.launching,
      ...this.stats,
      instances: this.instances.map((i) => ({
        id: i.id,
        pid: i.process.pid,
        status: i.status,
        memoryUsage: i.memoryUsage,
        taskCount: i.taskCount,
        activeTasks: i.activeTasks,
        draining: i.draining,
        createdAt: i.createdAt.toISOString(),
      })),
    };
  }
}
