/** Small helpers shared by the handlers: which files a run wrote, and content types by extension. */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';

const SNAPSHOT_LIMIT = 2000;

export type Snapshot = Map<string, { size: number; mtimeMs: number }>;

export async function snapshotFiles(workDir: string): Promise<Snapshot> {
  const snap: Snapshot = new Map();
  const stack: [string, string][] = [[workDir, '']];
  while (stack.length > 0 && snap.size < SNAPSHOT_LIMIT) {
    const [dir, rel] = stack.pop() as [string, string];
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) stack.push([join(dir, e.name), r]);
      else if (e.isFile()) {
        const info = await lstat(join(dir, e.name)).catch(() => undefined);
        if (info) snap.set(r, { size: info.size, mtimeMs: info.mtimeMs });
      }
      if (snap.size >= SNAPSHOT_LIMIT) break;
    }
  }
  return snap;
}

export function diffSnapshots(
  before: Snapshot,
  after: Snapshot,
): { path: string; size: number; change: 'created' | 'modified' }[] {
  const out: { path: string; size: number; change: 'created' | 'modified' }[] = [];
  for (const [path, info] of after) {
    const old = before.get(path);
    if (!old) out.push({ path, size: info.size, change: 'created' });
    else if (old.mtimeMs !== info.mtimeMs || old.size !== info.size)
      out.push({ path, size: info.size, change: 'modified' });
  }
  return out.sort((a, b) => a.path.localeCompare(b.path)).slice(0, 200);
}

const TYPES: Record<string, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  jpeg: 'image/jpeg',
  gif: 'image/gif',
  svg: 'image/svg+xml',
  pdf: 'application/pdf',
  json: 'application/json',
  csv: 'text/csv',
  txt: 'text/plain',
  md: 'text/markdown',
  py: 'text/x-python',
  html: 'text/html',
  xml: 'application/xml',
  zip: 'application/zip',
  whl: 'application/zip',
  npy: 'application/octet-stream',
};

export function contentTypeFor(path: string): string {
  const ext = path.split('.').pop()?.toLowerCase() ?? '';
  return TYPES[ext] ?? 'application/octet-stream';
}
