/** Small helpers shared by the handlers: which files a run wrote, and content types by extension. */
import { scanWorkspace, type FileSnapshot } from '../workspace.js';

export type Snapshot = FileSnapshot;

/** The workspace's files before a run, to tell afterwards what the run wrote. */
export async function snapshotFiles(workDir: string): Promise<Snapshot> {
  return (await scanWorkspace(workDir, { files: true, stopAtBytes: -1 })).files;
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
