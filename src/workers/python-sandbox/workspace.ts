/**
 * Sandbox directories on the host, and the only way the worker touches files in them.
 *
 * Each sandbox owns `<workspace>/sbx-<workerPid>-<id>/{work,pkgs}`, owned by the sandbox uid (mode 0700),
 * removed when the sandbox ends. File operations run as the worker (root), so every path from a task is
 * untrusted: absolute paths, `..` escapes, symlinks whose target leaves the workspace and device files are
 * refused; the final open uses O_NOFOLLOW so a symlink swapped in after the check is not followed. A
 * session's files are only touched while no code of that session runs (the session lock), and the runner
 * kills stray processes after every run, so nothing in the sandbox races these checks.
 */
import { constants as fsc, existsSync, mkdirSync, readdirSync, chmodSync, chownSync, rmSync } from 'node:fs';
import { lstat, mkdir, open, readdir, realpath, chown, rename, rm, stat } from 'node:fs/promises';
import { isAbsolute, join, posix, relative, resolve, sep } from 'node:path';
import { FleetError } from '../../protocol/errors.js';
import { pidAlive } from './proc-stats.js';

export interface SandboxDirs {
  root: string;
  workDir: string;
  pkgDir: string;
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

export function createSandboxDirs(
  workspaceRoot: string,
  id: string,
  uid: number,
  chownToUid: boolean,
): SandboxDirs {
  const root = join(workspaceRoot, `${PREFIX}${process.pid}-${id}`);
  const workDir = join(root, 'work');
  const pkgDir = join(root, 'pkgs');
  mkdirSync(root, { mode: 0o700 });
  mkdirSync(workDir, { mode: 0o700 });
  mkdirSync(pkgDir, { mode: 0o700 });
  if (chownToUid) for (const d of [root, workDir, pkgDir]) chownSync(d, uid, uid);
  return { root, workDir, pkgDir };
}

export async function removeSandboxDirs(dirs: SandboxDirs): Promise<void> {
  await rm(dirs.root, { recursive: true, force: true, maxRetries: 3 });
}

/** Removes the directories of workers that died without cleaning up. */
export function sweepStaleDirs(workspaceRoot: string): number {
  if (!existsSync(workspaceRoot)) return 0;
  let removed = 0;
  for (const name of readdirSync(workspaceRoot)) {
    const m = /^sbx-(\d+)-/.exec(name);
    if (!m || pidAlive(Number(m[1]))) continue;
    rmSync(join(workspaceRoot, name), { recursive: true, force: true });
    removed++;
  }
  return removed;
}

/** Files by workspace-relative path, with what tells a change: size and mtime. */
export type FileSnapshot = Map<string, { size: number; mtimeMs: number }>;

/** At most this many files are listed in a snapshot (a run's report of written files is capped anyway). */
const SNAPSHOT_LIMIT = 2000;

export interface WorkspaceScan {
  /** The first SNAPSHOT_LIMIT files, when asked for. */
  files: FileSnapshot;
  /** Disk blocks in use (bytes); counting stops once past `stopAtBytes`. */
  bytes: number;
}

/**
 * One walk of a workspace (lstat, symlinks not followed) for both what a run needs: the file snapshot and the
 * disk use. It stops when it has all it was asked for: the snapshot is full (or not wanted) and the byte
 * count is past `stopAtBytes` (pass -1 when only the snapshot matters).
 */
export async function scanWorkspace(
  dir: string,
  options: { files: boolean; stopAtBytes: number },
): Promise<WorkspaceScan> {
  const files: FileSnapshot = new Map();
  let bytes = 0;
  const done = () => (!options.files || files.size >= SNAPSHOT_LIMIT) && bytes > options.stopAtBytes;
  const stack: [string, string][] = [[dir, '']];
  let visited = 0;
  while (stack.length > 0 && !done() && visited < 200_000) {
    const [current, rel] = stack.pop() as [string, string];
    let entries;
    try {
      entries = await readdir(current, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      visited++;
      const p = join(current, entry.name);
      const r = rel ? `${rel}/${entry.name}` : entry.name;
      if (entry.isDirectory()) stack.push([p, r]);
      else if (entry.isFile()) {
        const info = await lstat(p).catch(() => undefined); // undefined: vanished meanwhile
        if (!info) continue;
        bytes += info.blocks * 512;
        if (options.files && files.size < SNAPSHOT_LIMIT)
          files.set(r, { size: info.size, mtimeMs: info.mtimeMs });
      }
    }
  }
  return { files, bytes };
}

/** Bytes used under `dir`; stops counting past `stopAt`. */
export async function directorySize(dir: string, stopAt = Number.POSITIVE_INFINITY): Promise<number> {
  return (await scanWorkspace(dir, { files: false, stopAtBytes: stopAt })).bytes;
}

function inside(base: string, target: string): boolean {
  const rel = relative(base, target);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

export interface ResolvedPath {
  /** Host path, every existing component checked. */
  host: string;
  /** Normalised path relative to the workspace ('' is the root). */
  rel: string;
}

/** Checks a task-supplied path and maps it into the workspace. Never follows a symlink out of it. */
export async function resolveWorkspacePath(
  workDir: string,
  userPath: unknown,
  label = 'path',
): Promise<ResolvedPath> {
  if (typeof userPath !== 'string') throw new FleetError('invalid_payload', `${label} must be a string`);
  if (userPath.includes('\0')) throw new FleetError('path_outside_workspace', `${label} contains a NUL byte`);
  if (userPath.length > 4096)
    throw new FleetError('invalid_payload', `${label} is longer than 4096 characters`);
  if (userPath.startsWith('/') || userPath.startsWith('\\') || /^[A-Za-z]:/.test(userPath)) {
    throw new FleetError(
      'path_outside_workspace',
      `${label} "${userPath}" is absolute; give a path relative to the workspace`,
      {
        details: { path: userPath },
      },
    );
  }
  const rel = posix.normalize(userPath === '' ? '.' : userPath).replace(/\/+$/, '');
  if (rel === '..' || rel.startsWith('../')) {
    throw new FleetError('path_outside_workspace', `${label} "${userPath}" leaves the workspace`, {
      details: { path: userPath },
    });
  }
  const base = await realpath(workDir);
  const parts = rel === '.' ? [] : rel.split('/');
  let current = base;
  for (let i = 0; i < parts.length; i++) {
    const next = join(current, parts[i] as string);
    let info;
    try {
      info = await lstat(next);
    } catch {
      // The rest does not exist yet (a write target); nothing below it can be a link.
      current = join(next, ...parts.slice(i + 1));
      break;
    }
    if (info.isSymbolicLink()) {
      let target: string;
      try {
        target = await realpath(next);
      } catch {
        throw new FleetError(
          'path_outside_workspace',
          `${label} "${userPath}" goes through a dangling symlink`,
          {
            details: { path: userPath },
          },
        );
      }
      if (!inside(base, target)) {
        throw new FleetError(
          'path_outside_workspace',
          `${label} "${userPath}" goes through a symlink that points outside the workspace`,
          {
            details: { path: userPath },
          },
        );
      }
      current = target;
      continue;
    }
    if (!info.isDirectory() && !info.isFile()) {
      throw new FleetError(
        'path_outside_workspace',
        `${label} "${userPath}" is a device, socket or pipe; only files and directories are allowed`,
        {
          details: { path: userPath },
        },
      );
    }
    if (info.isFile() && i < parts.length - 1) {
      throw new FleetError(
        'file_not_found',
        `${label} "${userPath}": "${parts.slice(0, i + 1).join('/')}" is a file, not a directory`,
      );
    }
    current = next;
  }
  if (!inside(base, current)) {
    throw new FleetError('path_outside_workspace', `${label} "${userPath}" leaves the workspace`, {
      details: { path: userPath },
    });
  }
  return { host: current, rel: relative(base, current).split(sep).join('/') };
}

export interface FileEntry {
  path: string;
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  size: number;
  mtime: string;
  mode: string;
}

export async function describe(host: string, rel: string): Promise<FileEntry> {
  const info = await lstat(host);
  return {
    path: rel,
    name: rel.split('/').pop() ?? '',
    type: info.isFile()
      ? 'file'
      : info.isDirectory()
        ? 'directory'
        : info.isSymbolicLink()
          ? 'symlink'
          : 'other',
    size: info.size,
    mtime: info.mtime.toISOString(),
    mode: (info.mode & 0o777).toString(8).padStart(3, '0'),
  };
}

export async function listDir(
  host: string,
  rel: string,
  recursive: boolean,
  limit: number,
): Promise<{ entries: FileEntry[]; truncated: boolean }> {
  const entries: FileEntry[] = [];
  const stack: [string, string][] = [[host, rel]];
  while (stack.length > 0) {
    const [dir, dirRel] = stack.shift() as [string, string];
    const names = (await readdir(dir)).sort();
    for (const name of names) {
      if (entries.length >= limit) return { entries, truncated: true };
      const childRel = dirRel ? `${dirRel}/${name}` : name;
      const entry = await describe(join(dir, name), childRel).catch(() => undefined);
      if (!entry) continue;
      entries.push(entry);
      if (recursive && entry.type === 'directory') stack.push([join(dir, name), childRel]);
    }
  }
  return { entries, truncated: false };
}

export async function readFileSafe(host: string, rel: string, maxBytes: number): Promise<Buffer> {
  let handle;
  try {
    handle = await open(host, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (err) {
    throw fileError(err, rel);
  }
  try {
    const info = await handle.stat();
    if (info.isDirectory()) throw new FleetError('invalid_payload', `"${rel}" is a directory; use list`);
    if (!info.isFile()) throw new FleetError('path_outside_workspace', `"${rel}" is not a regular file`);
    if (info.size > maxBytes) {
      throw new FleetError(
        'file_too_large',
        `"${rel}" is ${info.size} bytes, over the ${maxBytes}-byte transfer cap`,
        {
          details: { size: info.size, limit: maxBytes },
        },
      );
    }
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

export async function writeFileSafe(
  host: string,
  rel: string,
  data: Buffer,
  opts: { uid: number | undefined; overwrite: boolean; workDir: string },
): Promise<void> {
  if (rel === '') throw new FleetError('invalid_payload', 'cannot write to the workspace root');
  const parent = join(host, '..');
  await mkdirOwned(opts.workDir, parent, opts.uid);
  const flags =
    fsc.O_WRONLY |
    fsc.O_CREAT |
    fsc.O_NOFOLLOW |
    fsc.O_NONBLOCK |
    (opts.overwrite ? fsc.O_TRUNC : fsc.O_EXCL);
  let handle;
  try {
    handle = await open(host, flags, 0o644);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new FleetError('conflict', `"${rel}" exists; pass overwrite: true to replace it`);
    }
    throw fileError(err, rel);
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) throw new FleetError('path_outside_workspace', `"${rel}" is not a regular file`);
    await handle.writeFile(data);
    if (opts.uid !== undefined) await handle.chown(opts.uid, opts.uid);
  } finally {
    await handle.close();
  }
}

/** mkdir -p inside the workspace, each new directory owned by the sandbox uid. */
export async function mkdirOwned(workDir: string, dir: string, uid: number | undefined): Promise<void> {
  const base = await realpath(workDir);
  if (!inside(base, dir)) throw new FleetError('path_outside_workspace', 'directory leaves the workspace');
  const missing: string[] = [];
  let cur = dir;
  while (cur !== base && !existsSync(cur)) {
    missing.unshift(cur);
    cur = join(cur, '..');
  }
  for (const d of missing) {
    await mkdir(d, { mode: 0o755 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw err;
    });
    const info = await lstat(d);
    if (!info.isDirectory())
      throw new FleetError('path_outside_workspace', 'a path component is not a directory');
    if (uid !== undefined) await chown(d, uid, uid);
  }
}

export async function removePath(host: string, rel: string, recursive: boolean): Promise<void> {
  if (rel === '') throw new FleetError('invalid_payload', 'cannot delete the workspace root');
  let info;
  try {
    info = await lstat(host);
  } catch (err) {
    throw fileError(err, rel);
  }
  if (info.isDirectory() && !recursive) {
    const names = await readdir(host);
    if (names.length > 0)
      throw new FleetError('conflict', `"${rel}" is a non-empty directory; pass recursive: true`);
  }
  await rm(host, { recursive: info.isDirectory(), force: false });
}

export async function movePath(
  from: ResolvedPath,
  to: ResolvedPath,
  overwrite: boolean,
  workDir: string,
  uid: number | undefined,
): Promise<void> {
  if (from.rel === '' || to.rel === '')
    throw new FleetError('invalid_payload', 'cannot move the workspace root');
  try {
    await lstat(from.host);
  } catch (err) {
    throw fileError(err, from.rel);
  }
  if (
    !overwrite &&
    (await lstat(to.host)
      .then(() => true)
      .catch(() => false))
  ) {
    throw new FleetError('conflict', `"${to.rel}" exists; pass overwrite: true to replace it`);
  }
  await mkdirOwned(workDir, join(to.host, '..'), uid);
  await rename(from.host, to.host);
}

export async function exists(host: string): Promise<boolean> {
  return stat(host)
    .then(() => true)
    .catch(() => false);
}

export function fileError(err: unknown, rel: string): FleetError {
  if (err instanceof FleetError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT')
    return new FleetError('file_not_found', `no such file in the workspace: "${rel}"`, {
      details: { path: rel },
    });
  if (code === 'ELOOP')
    return new FleetError(
      'path_outside_workspace',
      `"${rel}" is a symlink; file operations do not follow links`,
    );
  if (code === 'EISDIR') return new FleetError('invalid_payload', `"${rel}" is a directory`);
  if (code === 'ENOTDIR') return new FleetError('file_not_found', `"${rel}": a parent is not a directory`);
  if (code === 'ENOSPC' || code === 'EDQUOT')
    return new FleetError('workspace_full', `no space left writing "${rel}"`);
  return new FleetError('internal', `file operation failed on "${rel}": ${(err as Error).message}`);
}
