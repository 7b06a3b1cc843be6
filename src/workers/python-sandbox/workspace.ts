/**
 * Sandbox directories on the host. Each sandbox owns `<workspace>/sbx-<workerPid>-<id>/{work,pkgs}`: when
 * the worker can mount (root), `sbx-…` is its own tmpfs with a size and an inode limit, so the quota is
 * the kernel's (a write past it fails with ENOSPC inside the sandbox, whatever the names or links) and its
 * pages are charged to the memory cgroup of whoever writes them (the sandbox). Without mounts it is a
 * plain directory and the quota is not enforced (reported on /health).
 *
 * The worker never opens a path inside these directories (see workspace-files.ts); it only creates them
 * before the sandbox starts and removes them after every process of the sandbox is dead.
 */
import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  chmodSync,
  chownSync,
  rmSync,
  statfsSync,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pidAlive } from './proc-stats.js';

export interface SandboxDirs {
  root: string;
  workDir: string;
  pkgDir: string;
  /** `root` is a size-limited tmpfs of its own. */
  mounted: boolean;
}

export interface WorkspaceQuota {
  bytes: number;
  inodes: number;
}

const PREFIX = 'sbx-';

export function ensureWorkspaceRoot(root: string): string {
  const abs = resolve(root);
  mkdirSync(abs, { recursive: true });
  // Sandbox uids must traverse it to reach their own (0700) directory; they cannot list it.
  try {
    chmodSync(abs, 0o711);
  } catch {
    // not ours to change (shared volume): the self-test will say if the sandbox cannot reach it
  }
  return abs;
}

/**
 * Creates a sandbox's directories (before any of its processes exists, so nothing races this). With a
 * quota, `root` becomes a tmpfs (mode 0711: the sandbox uid passes through to its own directories).
 */
export async function createSandboxDirs(
  workspaceRoot: string,
  id: string,
  uid: number,
  chownToUid: boolean,
  quota: WorkspaceQuota | undefined,
): Promise<SandboxDirs> {
  const root = join(workspaceRoot, `${PREFIX}${process.pid}-${id}`);
  const workDir = join(root, 'work');
  const pkgDir = join(root, 'pkgs');
  mkdirSync(root, { mode: 0o700 });
  let mounted = false;
  if (quota) {
    await mountTmpfsAsync(root, quota);
    mounted = true;
  }
  try {
    if (mounted) chmodSync(root, 0o711);
    mkdirSync(workDir, { mode: 0o700 });
    mkdirSync(pkgDir, { mode: 0o700 });
    if (chownToUid)
      for (const d of mounted ? [workDir, pkgDir] : [root, workDir, pkgDir]) chownSync(d, uid, uid);
  } catch (err) {
    if (mounted) await unmountAsync(root);
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
  return { root, workDir, pkgDir, mounted };
}

const execFileAsync = promisify(execFile);

function tmpfsOptions(quota: WorkspaceQuota): string {
  return `size=${quota.bytes},nr_inodes=${quota.inodes},mode=0700,nosuid,nodev`;
}

// Sandboxes start and end while tasks run (the warm pool refills right after a claim): mount and umount run
// as child processes off the event loop, or each one would hold every task's reply for a fork and exec.
async function mountTmpfsAsync(dir: string, quota: WorkspaceQuota): Promise<void> {
  try {
    await execFileAsync('mount', ['-t', 'tmpfs', '-o', tmpfsOptions(quota), 'fleet-workspace', dir], {
      timeout: 10_000,
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`could not mount the workspace tmpfs: ${(e.stderr || e.message).trim()}`);
  }
}

async function unmountAsync(dir: string): Promise<boolean> {
  try {
    await execFileAsync('umount', ['-l', dir], { timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
}

function mountTmpfs(dir: string, quota: WorkspaceQuota): void {
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', tmpfsOptions(quota), 'fleet-workspace', dir], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  if (r.status !== 0)
    throw new Error(`could not mount the workspace tmpfs: ${(r.stderr || r.error?.message || '').trim()}`);
}

function unmount(dir: string): boolean {
  // Lazy: a mount namespace of a dying sandbox may still hold it; the kernel frees it with the last user.
  return spawnSync('umount', ['-l', dir], { timeout: 10_000 }).status === 0;
}

/** Can this worker give each workspace its own tmpfs? (root, and `mount` works here) */
export function probeWorkspaceMounts(workspaceRoot: string): boolean {
  if (process.getuid?.() !== 0) return false;
  const dir = join(workspaceRoot, `${PREFIX}${process.pid}-probe`);
  try {
    mkdirSync(dir, { mode: 0o700 });
    mountTmpfs(dir, { bytes: 1024 * 1024, inodes: 16 });
    unmount(dir);
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Space and inodes of a mounted workspace; undefined without its own filesystem. */
export function workspaceUsage(
  dirs: SandboxDirs,
): { usedBytes: number; freeBytes: number; totalBytes: number; freeInodes: number } | undefined {
  if (!dirs.mounted) return undefined;
  try {
    // statfs of the mount point itself: the sandbox sees only directories below it and cannot replace it.
    const s = statfsSync(dirs.root);
    return {
      usedBytes: (s.blocks - s.bfree) * s.bsize,
      freeBytes: s.bavail * s.bsize,
      totalBytes: s.blocks * s.bsize,
      freeInodes: s.ffree,
    };
  } catch {
    return undefined;
  }
}

/** Only once every process of the sandbox is dead: nothing can change the tree under this. */
export async function removeSandboxDirs(dirs: SandboxDirs): Promise<void> {
  if (dirs.mounted) await unmountAsync(dirs.root);
  await rm(dirs.root, { recursive: true, force: true, maxRetries: 3 });
}

/** Removes the directories (and workspace mounts) of workers that died without cleaning up. */
export function sweepStaleDirs(workspaceRoot: string): number {
  if (!existsSync(workspaceRoot)) return 0;
  let removed = 0;
  for (const name of readdirSync(workspaceRoot)) {
    const m = /^sbx-(\d+)-/.exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    const dir = join(workspaceRoot, name);
    if (isMountPoint(dir)) unmount(dir);
    rmSync(dir, { recursive: true, force: true });
    removed++;
  }
  return removed;
}

function isMountPoint(dir: string): boolean {
  let text = '';
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return false;
  }
  return text.split('\n').some((line) => line.split(' ')[4] === dir);
}
