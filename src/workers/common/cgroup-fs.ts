/**
 * Where this process sits in the host's control-group hierarchies, read from /proc/self/cgroup and
 * /proc/self/mountinfo, for every worker kind that puts its children in groups of their own (the python
 * sandbox: memory, pids, cpu, freezer, kill; the browser pool: memory). Never assume v1 or v2: a hybrid host
 * mounts v1 controllers beside a v2 tree, and a container sees its own group as the root of a mount.
 */
import { accessSync, constants, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export function tryWrite(path: string, value: string): boolean {
  try {
    writeFileSync(path, value);
    return true;
  } catch {
    return false;
  }
}

export function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

export interface CgroupMount {
  fstype: 'cgroup' | 'cgroup2';
  mountPoint: string;
  root: string;
  superOptions: string[];
}

export function cgroupMounts(): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of (readText('/proc/self/mountinfo') ?? '').split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const l = left.split(' ');
    const r = right.split(' ');
    const fstype = r[0];
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    out.push({ fstype, mountPoint: l[4] ?? '', root: l[3] ?? '/', superOptions: (r[2] ?? '').split(',') });
  }
  return out;
}

/** This process's group per hierarchy: v1 controller → path, and '' → the v2 path. */
export function selfGroups(): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of (readText('/proc/self/cgroup') ?? '').split('\n')) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const controllers = m[1] ?? '';
    const path = m[2] ?? '/';
    if (controllers === '') map.set('', path);
    else for (const c of controllers.split(',')) map.set(c, path);
  }
  return map;
}

/** Our own group's directory under a mount. */
export function groupDir(mount: CgroupMount, selfPath: string): string {
  // A mount whose root is our group (a container's namespaced view) maps our path to the mount point.
  const rel =
    mount.root !== '/' && selfPath.startsWith(mount.root) ? selfPath.slice(mount.root.length) : selfPath;
  return join(mount.mountPoint, rel);
}
