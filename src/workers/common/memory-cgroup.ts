/**
 * A memory control group per process tree, on cgroup v1 or v2 (or a hybrid host with the memory controller on
 * either side), so the kernel holds a memory limit that no sampler can be too slow for: when the tree goes over
 * it, the OOM killer picks one process inside the group (the largest, weighted by oom_score_adj) and nothing
 * outside it. A launcher joins the group by writing its own pid into `procsFile` before exec'ing, so every child
 * is born inside.
 *
 * Where the groups live is read by `cgroup-fs.ts`, shared with the python sandbox's groups.
 */
import { existsSync, mkdirSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cgroupMounts, groupDir, readText, selfGroups, tryWrite, writable } from './cgroup-fs.js';

export interface MemoryCgroupRoot {
  version: 'v1' | 'v2';
  /** The directory (our own group in the memory hierarchy) children are created in. */
  dir: string;
}

/** Where memory groups can be made: v1 memory controller first (hybrid hosts keep it there), else v2. */
export function probeMemoryCgroup(): MemoryCgroupRoot | undefined {
  const all = cgroupMounts();
  const self = selfGroups();
  const v1 = all.find((m) => m.fstype === 'cgroup' && m.superOptions.includes('memory'));
  const v1path = self.get('memory');
  if (v1 && v1path !== undefined) {
    const dir = groupDir(v1, v1path);
    if (existsSync(join(dir, 'memory.limit_in_bytes')) && writable(dir)) return { version: 'v1', dir };
  }
  const v2 = all.find((m) => m.fstype === 'cgroup2');
  const v2path = self.get('');
  if (v2 && v2path !== undefined) {
    const dir = groupDir(v2, v2path);
    if (!existsSync(join(dir, 'cgroup.procs')) || !writable(dir)) return undefined;
    const available = (readText(join(dir, 'cgroup.controllers')) ?? '').split(/\s+/);
    if (!available.includes('memory')) return undefined;
    // A group holding processes cannot delegate (no internal processes rule): then there is nothing to use.
    tryWrite(join(dir, 'cgroup.subtree_control'), '+memory');
    if ((readText(join(dir, 'cgroup.subtree_control')) ?? '').split(/\s+/).includes('memory')) {
      return { version: 'v2', dir };
    }
  }
  return undefined;
}

export class MemoryCgroup {
  private constructor(
    readonly root: MemoryCgroupRoot,
    readonly dir: string,
    readonly limitBytes: number,
  ) {}

  /** Creates `<root>/<name>` with the limit (swap included, so the limit cannot be escaped into swap). */
  static create(root: MemoryCgroupRoot, name: string, limitBytes: number): MemoryCgroup {
    const dir = join(root.dir, name);
    mkdirSync(dir);
    try {
      if (root.version === 'v1') {
        writeFileSync(join(dir, 'memory.limit_in_bytes'), String(limitBytes));
        tryWrite(join(dir, 'memory.memsw.limit_in_bytes'), String(limitBytes));
        tryWrite(join(dir, 'memory.swappiness'), '0');
      } else {
        writeFileSync(join(dir, 'memory.max'), String(limitBytes));
        tryWrite(join(dir, 'memory.swap.max'), '0');
      }
    } catch (err) {
      try {
        rmdirSync(dir);
      } catch {
        // nothing to undo
      }
      throw err;
    }
    return new MemoryCgroup(root, dir, limitBytes);
  }

  /** A group found on disk (a dead worker's), to be destroyed. */
  static attach(root: MemoryCgroupRoot, dir: string): MemoryCgroup {
    return new MemoryCgroup(root, dir, 0);
  }

  get procsFile(): string {
    return join(this.dir, 'cgroup.procs');
  }

  /** Processes the kernel's OOM killer killed in this group so far. */
  oomKills(): number {
    const file = this.root.version === 'v1' ? 'memory.oom_control' : 'memory.events';
    const m = /^oom_kill (\d+)$/m.exec(readText(join(this.dir, file)) ?? '');
    return m ? Number(m[1]) : 0;
  }

  /** Bytes charged to the group now (page cache included). */
  usageBytes(): number {
    const file = this.root.version === 'v1' ? 'memory.usage_in_bytes' : 'memory.current';
    const n = Number(readText(join(this.dir, file)));
    return Number.isFinite(n) ? n : 0;
  }

  pids(): number[] {
    return (readText(this.procsFile) ?? '')
      .split('\n')
      .map(Number)
      .filter((p) => Number.isInteger(p) && p > 0);
  }

  /** Removes the group once its processes are gone (retried briefly: the kernel frees it a little later). */
  async destroy(): Promise<void> {
    for (let i = 0; i < 100; i++) {
      for (const pid of this.pids()) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      try {
        rmdirSync(this.dir);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return;
        if (code !== 'EBUSY') return;
        await new Promise((r) => setTimeout(r, 20).unref());
      }
    }
  }
}

/** Removes `<prefix><pid>-…` groups whose owner pid is gone (a worker that died without cleaning up). */
export async function sweepMemoryCgroups(
  root: MemoryCgroupRoot,
  prefix: string,
  alive: (pid: number) => boolean,
): Promise<number> {
  let removed = 0;
  let names: string[];
  try {
    names = readdirSync(root.dir);
  } catch {
    return 0;
  }
  for (const name of names) {
    const m = /^(\d+)-/.exec(name.startsWith(prefix) ? name.slice(prefix.length) : '');
    if (!m || alive(Number(m[1]))) continue;
    await MemoryCgroup.attach(root, join(root.dir, name)).destroy();
    removed++;
  }
  return removed;
}
