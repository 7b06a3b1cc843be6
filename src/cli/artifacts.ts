/**
 * Saving a task's artifacts to disk. Names come from workers, so each becomes a plain file name inside the
 * chosen directory (never a path out of it), and the file is opened without following a symlink already
 * standing at that name.
 */
import { constants } from 'node:fs';
import { mkdir, open } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { ClientTask, FleetClient } from '../client/fleet-client.js';
import { FleetError } from '../protocol/errors.js';

export interface SavedArtifact {
  name: string;
  path: string;
  size: number;
  contentType: string;
}

/** A worker-chosen name as a file name: its last segment, control characters and leading dots removed. */
export function safeFileName(name: string): string {
  const last = basename(name.replace(/\\/g, '/'));
  // eslint-disable-next-line no-control-regex
  const clean = last.replace(/[\x00-\x1f\x7f]/g, '_').replace(/^\.+/, '');
  return clean === '' ? 'artifact' : clean;
}

export async function saveArtifacts(
  client: FleetClient,
  task: ClientTask,
  dir: string,
  names: string[] = [],
): Promise<SavedArtifact[]> {
  const available = task.artifacts ?? [];
  const missing = names.filter((n) => !available.some((a) => a.name === n));
  if (missing.length > 0) {
    throw new FleetError(
      'not_found',
      `task ${task.id} has no artifact ${missing.map((n) => `"${n}"`).join(', ')} (it has ${
        available.length ? available.map((a) => a.name).join(', ') : 'none'
      })`,
    );
  }
  const chosen = names.length ? available.filter((a) => names.includes(a.name)) : available;
  const root = resolve(dir);
  await mkdir(root, { recursive: true });
  const used = new Set<string>();
  const saved: SavedArtifact[] = [];
  for (const a of chosen) {
    let file = safeFileName(a.name);
    // Two names that clean to the same file must not overwrite each other.
    for (let i = 2; used.has(file); i++) file = `${i}-${safeFileName(a.name)}`;
    used.add(file);
    const { data, contentType } = await client.artifact(task.id, a.name);
    const path = join(root, file);
    const fh = await open(
      path,
      constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW,
      0o644,
    );
    try {
      await fh.writeFile(data);
    } finally {
      await fh.close();
    }
    saved.push({ name: a.name, path, size: data.length, contentType });
  }
  return saved;
}
