/**
 * The worker's only way into a workspace's files. The worker runs as root and a sandbox can change its
 * workspace at any moment (background threads and processes of a session, a one-shot sandbox still alive
 * during `collect`), so the worker never resolves a workspace path itself: it checks the shape of a
 * task's path here, then asks the sandbox's runner, which does the work as the sandbox uid inside the
 * sandbox's mount namespace, walking from a directory fd with O_NOFOLLOW. A symlink swapped in at any
 * moment can then only point at what the sandbox can already see, and is refused anyway. Bytes cross
 * the control channel; the runner's answers are checked here (sizes, shapes, error codes) because user
 * code shares its process and may forge them — it can only lie about its own files.
 */
import { posix } from 'node:path';
import { FleetError, isErrorCode, type ErrorCode } from '../../protocol/errors.js';
import type { Sandbox } from './sandbox.js';

export interface FileEntry {
  path: string;
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  size: number;
  mtime: string;
  mode: string;
}

/** Codes a runner may answer with; anything else becomes `internal`. */
const RUNNER_CODES = new Set<ErrorCode>([
  'path_outside_workspace',
  'file_not_found',
  'file_too_large',
  'workspace_full',
  'conflict',
  'invalid_payload',
  'internal',
]);

/** Checks a task-supplied path's shape and normalises it to workspace-relative ('' is the root). */
export function normalizeWorkspacePath(userPath: unknown, label = 'path'): string {
  if (typeof userPath !== 'string') throw new FleetError('invalid_payload', `${label} must be a string`);
  if (userPath.includes('\0')) throw new FleetError('path_outside_workspace', `${label} contains a NUL byte`);
  if (userPath.length > 4096)
    throw new FleetError('invalid_payload', `${label} is longer than 4096 characters`);
  if (userPath.startsWith('/') || userPath.startsWith('\\') || /^[A-Za-z]:/.test(userPath)) {
    throw new FleetError(
      'path_outside_workspace',
      `${label} "${userPath}" is absolute; give a path relative to the workspace`,
      { details: { path: userPath } },
    );
  }
  const rel = posix.normalize(userPath === '' ? '.' : userPath).replace(/\/+$/, '');
  if (rel === '..' || rel.startsWith('../')) {
    throw new FleetError('path_outside_workspace', `${label} "${userPath}" leaves the workspace`, {
      details: { path: userPath },
    });
  }
  return rel === '.' ? '' : rel;
}

const BYTES = Symbol('bytes');

export class WorkspaceFiles {
  constructor(
    private readonly sandbox: Sandbox,
    private readonly timeoutMs: number,
  ) {}

  private async call(
    command: Record<string, unknown>,
    data?: Buffer,
  ): Promise<Record<string, unknown> & { [BYTES]?: Buffer }> {
    const answer = await this.sandbox.fileOp(command, this.timeoutMs, data);
    if (!answer) {
      throw new FleetError(
        'handler_error',
        this.sandbox.alive
          ? `the sandbox did not answer the file operation within ${this.timeoutMs} ms (its interpreter is busy or broken)`
          : 'the sandbox is no longer running',
      );
    }
    const { reply } = answer;
    if (reply.ok === true && reply.result && typeof reply.result === 'object') {
      const result = reply.result as Record<string, unknown> & { [BYTES]?: Buffer };
      if (answer.data) result[BYTES] = answer.data;
      return result;
    }
    const e = (reply.error ?? {}) as Record<string, unknown>;
    const code =
      typeof e.code === 'string' && isErrorCode(e.code) && RUNNER_CODES.has(e.code) ? e.code : 'internal';
    const message = typeof e.message === 'string' ? e.message.slice(0, 2000) : 'file operation failed';
    const raw = (e.details ?? {}) as Record<string, unknown>;
    const details: Record<string, unknown> = {};
    if (typeof raw.path === 'string') details.path = raw.path.slice(0, 4096);
    for (const k of ['size', 'limit'] as const) if (typeof raw[k] === 'number') details[k] = raw[k];
    throw new FleetError(code, message, Object.keys(details).length > 0 ? { details } : {});
  }

  async read(rel: string, maxBytes: number): Promise<Buffer> {
    const res = await this.call({ action: 'read', path: rel, max: maxBytes });
    const data = res[BYTES];
    if (!data) throw new FleetError('internal', 'the sandbox answered a read with no data');
    if (data.length > maxBytes) {
      throw new FleetError('file_too_large', `"${rel}" is over the ${maxBytes}-byte transfer cap`, {
        details: { size: data.length, limit: maxBytes },
      });
    }
    return data;
  }

  async write(rel: string, data: Buffer, overwrite: boolean): Promise<void> {
    if (rel === '') throw new FleetError('invalid_payload', 'cannot write to the workspace root');
    await this.call({ action: 'write', path: rel, overwrite }, data);
  }

  async stat(rel: string): Promise<FileEntry> {
    return toEntry(await this.call({ action: 'stat', path: rel }), rel);
  }

  async list(
    rel: string,
    recursive: boolean,
    limit: number,
  ): Promise<{ entries: FileEntry[]; truncated: boolean }> {
    const info = await this.stat(rel);
    if (info.type !== 'directory') throw new FleetError('invalid_payload', `"${rel}" is not a directory`);
    const res = await this.call({ action: 'list', path: rel, recursive, limit });
    const raw = Array.isArray(res.entries) ? (res.entries as Record<string, unknown>[]) : [];
    return {
      entries: raw.slice(0, limit).map((e) => toEntry(e, rel)),
      truncated: res.truncated === true || raw.length > limit,
    };
  }

  async delete(rel: string, recursive: boolean): Promise<void> {
    if (rel === '') throw new FleetError('invalid_payload', 'cannot delete the workspace root');
    await this.call({ action: 'delete', path: rel, recursive });
  }

  async move(from: string, to: string, overwrite: boolean): Promise<void> {
    if (from === '' || to === '') throw new FleetError('invalid_payload', 'cannot move the workspace root');
    await this.call({ action: 'move', from, to, overwrite });
  }

  async mkdir(rel: string): Promise<void> {
    await this.call({ action: 'mkdir', path: rel });
  }
}

function toEntry(raw: Record<string, unknown>, fallbackPath: string): FileEntry {
  const type = raw.type;
  const mtimeMs = typeof raw.mtimeMs === 'number' && Math.abs(raw.mtimeMs) < 8.64e15 ? raw.mtimeMs : 0;
  const path = typeof raw.path === 'string' ? raw.path.slice(0, 4096) : fallbackPath;
  return {
    path,
    name: typeof raw.name === 'string' ? raw.name.slice(0, 4096) : (path.split('/').pop() ?? ''),
    type: type === 'file' || type === 'directory' || type === 'symlink' ? type : 'other',
    size: typeof raw.size === 'number' ? raw.size : 0,
    mtime: new Date(mtimeMs).toISOString(),
    mode: typeof raw.mode === 'string' ? raw.mode.slice(0, 4) : '000',
  };
}
