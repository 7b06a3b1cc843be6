/**
 * Exported files land in a directory the caller names, inside the worker's workspace and nowhere else:
 * `..`, absolute paths outside it and symlinks that lead out are refused with `path_outside_workspace`.
 */
import { mkdir, realpath } from 'node:fs/promises';
import { isAbsolute, relative, resolve, sep } from 'node:path';
import { FleetError } from '../../../protocol/errors.js';

function inside(root: string, target: string): boolean {
  const rel = relative(root, target);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

/** Creates (if needed) and returns the real path of `dir` under `workspace`. */
export async function guardedDir(workspace: string, dir: string): Promise<string> {
  if (dir.includes('\0')) throw new FleetError('path_outside_workspace', 'out_dir: contains a NUL byte');
  const root = resolve(workspace);
  const target = resolve(root, dir);
  if (!inside(root, target))
    throw new FleetError('path_outside_workspace', `out_dir: "${dir}" leaves the workspace`);
  await mkdir(target, { recursive: true });
  const [realRoot, realTarget] = await Promise.all([realpath(root), realpath(target)]);
  if (!inside(realRoot, realTarget))
    throw new FleetError(
      'path_outside_workspace',
      `out_dir: "${dir}" leads out of the workspace through a link`,
    );
  return realTarget;
}

/** A file name from an id: letters, digits, dashes. */
export function safeFileName(id: string, ext: string): string {
  const base =
    id
      .replace(/[^A-Za-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 120) || 'asset';
  return `${base}.${ext}`;
}
