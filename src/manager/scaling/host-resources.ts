/**
 * How much memory this machine can still give to a new worker instance. Inside a container the
 * machine-wide figure lies (a 64 GiB host in a 2 GiB container), so the cgroup v2 limit, when there is
 * one, caps the answer.
 */
import { readFileSync } from 'node:fs';
import { freemem } from 'node:os';

export interface HostResources {
  freeMemoryBytes(): number;
}

type ReadText = (path: string) => string | undefined;

const readText: ReadText = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
};

/** `MemAvailable` (what the kernel could hand out without swapping), in bytes; undefined when absent. */
export function parseMemAvailable(meminfo: string): number | undefined {
  const m = /^MemAvailable:\s+(\d+)\s*kB$/m.exec(meminfo);
  return m ? Number(m[1]) * 1024 : undefined;
}

/** Room left under a cgroup v2 memory limit; undefined when unlimited or unreadable. */
export function cgroupHeadroom(
  maxText: string | undefined,
  currentText: string | undefined,
): number | undefined {
  const max = maxText?.trim();
  const current = currentText?.trim();
  if (!max || max === 'max' || !current) return undefined;
  const limit = Number(max);
  const used = Number(current);
  if (!Number.isFinite(limit) || !Number.isFinite(used)) return undefined;
  return Math.max(0, limit - used);
}

export class SystemHostResources implements HostResources {
  constructor(
    private readonly read: ReadText = readText,
    private readonly osFree: () => number = freemem,
  ) {}

  freeMemoryBytes(): number {
    const meminfo = this.read('/proc/meminfo');
    const available = (meminfo !== undefined ? parseMemAvailable(meminfo) : undefined) ?? this.osFree();
    const headroom = cgroupHeadroom(
      this.read('/sys/fs/cgroup/memory.max'),
      this.read('/sys/fs/cgroup/memory.current'),
    );
    return headroom === undefined ? available : Math.min(available, headroom);
  }
}
