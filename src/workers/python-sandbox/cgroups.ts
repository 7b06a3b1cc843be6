/**
 * Per-sandbox control groups, on whatever the host offers. Never assume v1 or v2: the probe reads
 * /proc/self/cgroup and /proc/self/mountinfo and finds, per controller, a directory we can create children
 * in. A hybrid host (Debian with v1 controllers and a bare v2 tree) gets limits from v1 and the atomic
 * `cgroup.kill` from v2; a pure v2 host gets both from v2; a host with neither gets nothing here and the
 * chain falls back to rlimits and the pid namespace.
 *
 * Group names carry the worker's pid so several workers share a host and a restarted worker can sweep
 * the groups a dead one left behind.
 */
import { existsSync, mkdirSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupMounts, groupDir, readText, selfGroups, tryWrite, writable } from '../common/cgroup-fs.js';
import { pidAlive } from './proc-stats.js';

export type CgroupMode = 'v1' | 'v2' | 'hybrid' | 'none';

export interface CgroupLayout {
  mode: CgroupMode;
  /** v1 controller → the directory (our own group in that hierarchy) we create children in. */
  v1: Partial<Record<'memory' | 'pids' | 'cpu' | 'freezer', string>>;
  /** v2: our group's directory and the controllers enabled for its children. */
  v2?: { dir: string; controllers: string[]; kill: boolean };
}

export interface CgroupLimits {
  memoryBytes: number;
  maxProcesses: number;
  cpuCores: number;
}

export interface CgroupStats {
  oomKills: number;
  pidsMaxHits: number;
  memoryPeakBytes: number | undefined;
}

const ROOT_PREFIX = 'fleet-py-';

export function probeCgroups(): CgroupLayout {
  const mounts = cgroupMounts();
  const self = selfGroups();
  const v1: CgroupLayout['v1'] = {};
  for (const controller of ['memory', 'pids', 'cpu', 'freezer'] as const) {
    const mount = mounts.find((m) => m.fstype === 'cgroup' && m.superOptions.includes(controller));
    const path = self.get(controller);
    if (!mount || path === undefined) continue;
    const dir = groupDir(mount, path);
    if (existsSync(dir) && writable(dir)) v1[controller] = dir;
  }
  let v2: CgroupLayout['v2'];
  const v2mount = mounts.find((m) => m.fstype === 'cgroup2');
  const v2path = self.get('');
  if (v2mount && v2path !== undefined) {
    const dir = groupDir(v2mount, v2path);
    if (existsSync(join(dir, 'cgroup.procs')) && writable(dir)) {
      const available = (readText(join(dir, 'cgroup.controllers')) ?? '').trim().split(/\s+/).filter(Boolean);
      const wanted = ['memory', 'pids', 'cpu'].filter((c) => available.includes(c) && !v1[c as 'memory']);
      for (const c of wanted) {
        try {
          writeFileSync(join(dir, 'cgroup.subtree_control'), `+${c}`);
        } catch {
          // A group holding processes cannot delegate controllers (no internal processes rule).
        }
      }
      const enabled = (readText(join(dir, 'cgroup.subtree_control')) ?? '')
        .trim()
        .split(/\s+/)
        .filter(Boolean);
      v2 = { dir, controllers: enabled, kill: true };
    }
  }
  const hasV1 = Object.keys(v1).length > 0;
  const mode: CgroupMode = hasV1 && v2 ? 'hybrid' : hasV1 ? 'v1' : v2 ? 'v2' : 'none';
  return { mode, v1, ...(v2 ? { v2 } : {}) };
}

/** Which limits this layout can enforce. */
export function cgroupCapabilities(layout: CgroupLayout): {
  memory: boolean;
  pids: boolean;
  cpu: boolean;
  kill: boolean;
} {
  const v2c = layout.v2?.controllers ?? [];
  return {
    memory: Boolean(layout.v1.memory) || v2c.includes('memory'),
    pids: Boolean(layout.v1.pids) || v2c.includes('pids'),
    cpu: Boolean(layout.v1.cpu) || v2c.includes('cpu'),
    kill: Boolean(layout.v2) || Boolean(layout.v1.freezer),
  };
}

export class SandboxCgroup {
  private readonly dirs: { kind: 'v1-memory' | 'v1-pids' | 'v1-cpu' | 'v1-freezer' | 'v2'; dir: string }[] =
    [];

  private constructor(private readonly layout: CgroupLayout) {}

  static create(layout: CgroupLayout, name: string, limits: CgroupLimits): SandboxCgroup {
    const group = new SandboxCgroup(layout);
    const leaf = `${ROOT_PREFIX}${process.pid}-${name}`;
    try {
      const v2c = layout.v2?.controllers ?? [];
      if (layout.v1.memory) {
        const dir = group.make('v1-memory', join(layout.v1.memory, leaf));
        writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limits.memoryBytes));
        // Without swap accounting this file is absent; the memory limit alone then holds.
        tryWrite(join(dir, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes));
        tryWrite(join(dir, 'memory.swappiness'), '0');
      }
      if (layout.v1.pids) {
        const dir = group.make('v1-pids', join(layout.v1.pids, leaf));
        writeFileSync(join(dir, 'pids.max'), String(limits.maxProcesses));
      }
      if (layout.v1.cpu) {
        const dir = group.make('v1-cpu', join(layout.v1.cpu, leaf));
        const period = 100_000;
        writeFileSync(join(dir, 'cpu.cfs_period_us'), String(period));
        writeFileSync(
          join(dir, 'cpu.cfs_quota_us'),
          String(Math.max(1000, Math.round(limits.cpuCores * period))),
        );
      }
      if (layout.v1.freezer) group.make('v1-freezer', join(layout.v1.freezer, leaf));
      if (layout.v2) {
        const dir = group.make('v2', join(layout.v2.dir, leaf));
        if (v2c.includes('memory') && !layout.v1.memory) {
          writeFileSync(join(dir, 'memory.max'), String(limits.memoryBytes));
          tryWrite(join(dir, 'memory.swap.max'), '0');
        }
        if (v2c.includes('pids') && !layout.v1.pids)
          writeFileSync(join(dir, 'pids.max'), String(limits.maxProcesses));
        if (v2c.includes('cpu') && !layout.v1.cpu) {
          writeFileSync(
            join(dir, 'cpu.max'),
            `${Math.max(1000, Math.round(limits.cpuCores * 100_000))} 100000`,
          );
        }
      }
    } catch (err) {
      void group.destroy();
      throw err;
    }
    return group;
  }

  private make(kind: SandboxCgroup['dirs'][number]['kind'], dir: string): string {
    mkdirSync(dir);
    this.dirs.push({ kind, dir });
    return dir;
  }

  /** `cgroup.procs` files a launcher writes its own pid into before exec'ing the sandbox. */
  procsFiles(): string[] {
    return this.dirs.map((d) => join(d.dir, 'cgroup.procs'));
  }

  pids(): number[] {
    const all = new Set<number>();
    for (const d of this.dirs) {
      for (const line of (readText(join(d.dir, 'cgroup.procs')) ?? '').split('\n')) {
        const pid = Number(line);
        if (Number.isInteger(pid) && pid > 0) all.add(pid);
      }
    }
    return [...all];
  }

  stats(): CgroupStats {
    let oomKills = 0;
    let pidsMaxHits = 0;
    let memoryPeakBytes: number | undefined;
    for (const d of this.dirs) {
      if (d.kind === 'v1-memory') {
        oomKills += counter(readText(join(d.dir, 'memory.oom_control')), 'oom_kill');
        const peak = Number(readText(join(d.dir, 'memory.max_usage_in_bytes')));
        if (Number.isFinite(peak)) memoryPeakBytes = peak;
      } else if (d.kind === 'v1-pids') {
        pidsMaxHits += counter(readText(join(d.dir, 'pids.events')), 'max');
      } else if (d.kind === 'v2') {
        oomKills += counter(readText(join(d.dir, 'memory.events')), 'oom_kill');
        pidsMaxHits += counter(readText(join(d.dir, 'pids.events')), 'max');
        const peak = Number(readText(join(d.dir, 'memory.peak')));
        if (Number.isFinite(peak) && memoryPeakBytes === undefined) memoryPeakBytes = peak;
      }
    }
    return { oomKills, pidsMaxHits, memoryPeakBytes };
  }

  /** Kills every process in the group, including ones that double-forked away from their parent. */
  kill(): void {
    const v2 = this.dirs.find((d) => d.kind === 'v2');
    if (v2 && tryWrite(join(v2.dir, 'cgroup.kill'), '1')) return;
    const freezer = this.dirs.find((d) => d.kind === 'v1-freezer');
    // Freeze first so a fork bomb cannot outrun the kill loop; SIGKILL is delivered on thaw.
    if (freezer) tryWrite(join(freezer.dir, 'freezer.state'), 'FROZEN');
    for (let round = 0; round < 20; round++) {
      const pids = this.pids();
      if (pids.length === 0) break;
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      if (freezer) tryWrite(join(freezer.dir, 'freezer.state'), 'THAWED');
    }
    if (freezer) tryWrite(join(freezer.dir, 'freezer.state'), 'THAWED');
  }

  /** Removes the groups; a group still holding processes (a kill in flight) is retried briefly. */
  async destroy(): Promise<void> {
    for (const d of this.dirs.splice(0).reverse()) await removeGroup(d.dir);
  }

  get layoutMode(): CgroupMode {
    return this.layout.mode;
  }
}

async function removeGroup(dir: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY') return;
      // The kernel frees a killed group within a few ms of its last process exiting.
      await new Promise((resolve) => setTimeout(resolve, 10).unref());
    }
  }
}

function counter(text: string | undefined, key: string): number {
  if (!text) return 0;
  const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** Removes groups left by workers that died without cleaning up (their pid no longer exists). */
export async function sweepStaleCgroups(layout: CgroupLayout): Promise<number> {
  let removed = 0;
  const parents = [...Object.values(layout.v1), ...(layout.v2 ? [layout.v2.dir] : [])];
  for (const parent of parents) {
    let entries: string[];
    try {
      entries = readdirSync(parent);
    } catch {
      continue;
    }
    for (const name of entries) {
      const m = new RegExp(`^${ROOT_PREFIX}(\\d+)-`).exec(name);
      if (!m || pidAlive(Number(m[1]))) continue;
      const dir = join(parent, name);
      for (const line of (readText(join(dir, 'cgroup.procs')) ?? '').split('\n')) {
        const pid = Number(line);
        if (pid > 0) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // gone
          }
        }
      }
      await removeGroup(dir);
      removed++;
    }
  }
  return removed;
}
