/**
 * `file-operations`: read, write, list, stat, delete, move, mkdir, upload and download inside the
 * session's workspace (a sessionId is required; the session is created on first use). Paths are
 * relative to the workspace; the work itself is done inside the sandbox (see workspace-files.ts). Sizes
 * are capped by `max_transfer_mb` (per transfer) and `max_file_mb`; the workspace's own filesystem
 * enforces `workspace_mb`.
 */
import { z } from 'zod';
import { FleetError } from '../../../protocol/errors.js';
import type { TaskHandler } from '../../common/worker-kind.js';
import { requireSessionId, withSession, type SandboxServices } from '../services.js';
import { normalizeWorkspacePath, WorkspaceFiles } from '../workspace-files.js';
import { contentTypeFor } from './files-util.js';

const path = z.string().max(4096);
const BufferJson = z.object({ type: z.literal('Buffer'), data: z.array(z.number().int().min(0).max(255)) });

export const FileOperationsPayloadSchema = z.discriminatedUnion('op', [
  z.object({ op: z.literal('read'), path, encoding: z.enum(['utf8', 'base64']).default('utf8') }).strict(),
  z
    .object({
      op: z.literal('write'),
      path,
      content: z.string(),
      encoding: z.enum(['utf8', 'base64']).default('utf8'),
      overwrite: z.boolean().default(true),
    })
    .strict(),
  z
    .object({
      op: z.literal('upload'),
      path,
      /** base64 text, a JSON-serialised Buffer, or an artifact in the wire shape. */
      data: z.union([z.string(), BufferJson]).optional(),
      artifact: z
        .object({
          name: z.string().optional(),
          contentType: z.string().optional(),
          encoding: z.literal('base64'),
          data: z.string(),
        })
        .optional(),
      overwrite: z.boolean().default(true),
    })
    .strict(),
  z.object({ op: z.literal('download'), path }).strict(),
  z
    .object({
      op: z.literal('list'),
      path: path.default(''),
      recursive: z.boolean().default(false),
      limit: z.number().int().positive().max(10_000).default(1000),
    })
    .strict(),
  z.object({ op: z.literal('stat'), path }).strict(),
  z.object({ op: z.literal('delete'), path, recursive: z.boolean().default(false) }).strict(),
  z.object({ op: z.literal('move'), from: path, to: path, overwrite: z.boolean().default(false) }).strict(),
  z.object({ op: z.literal('mkdir'), path }).strict(),
]);

export type FileOperationsPayload = z.infer<typeof FileOperationsPayloadSchema>;

const FileEntrySchema = z.object({
  path: z.string(),
  name: z.string(),
  type: z.enum(['file', 'directory', 'symlink', 'other']),
  size: z.number(),
  mtime: z.string(),
  mode: z.string(),
});

/** One shape per `op` (paths relative to the workspace). */
export const FileOperationsResultSchema = z.union([
  z.object({ path: z.string(), size: z.number(), encoding: z.enum(['utf8', 'base64']), content: z.string() }),
  z.object({ path: z.string(), size: z.number(), written: z.literal(true) }),
  z.object({
    path: z.string(),
    size: z.number(),
    contentType: z.string(),
    artifact: z.string().describe('the name of the artifact carrying the bytes'),
  }),
  z.object({ path: z.string(), entries: z.array(FileEntrySchema), truncated: z.boolean() }),
  FileEntrySchema.describe('stat'),
  z.object({ path: z.string(), deleted: z.literal(true) }),
  z.object({ from: z.string(), to: z.string(), moved: z.literal(true) }),
  z.object({ path: z.string(), created: z.boolean() }),
]);
export type FileOperationsResult = z.infer<typeof FileOperationsResultSchema>;

function decodeBase64(text: string, field: string): Buffer {
  if (!/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(text))
    throw new FleetError('invalid_payload', `${field} is not valid base64`);
  return Buffer.from(text, 'base64');
}

export function createFileOperationsHandler(
  services: SandboxServices,
): TaskHandler<FileOperationsPayload, FileOperationsResult> {
  const { limits } = services;
  return {
    capability: 'file-operations',
    description:
      'Reads, writes, lists, stats, deletes, moves, uploads and downloads files inside a session workspace (paths relative to it; no escapes, links or devices).',
    payloadSchema: FileOperationsPayloadSchema,
    resultSchema: FileOperationsResultSchema,
    async run(payload, ctx) {
      const sessionId = requireSessionId(ctx, 'file-operations');
      const create =
        payload.op === 'write' || payload.op === 'upload' || payload.op === 'mkdir' || payload.op === 'list';
      // Shape checks first: a bad path never reaches (or creates) a session.
      const rel = payload.op === 'move' ? '' : normalizeWorkspacePath(payload.path);
      return withSession(services, sessionId, { create }, async (session) => {
        const files = new WorkspaceFiles(session.sandbox, fileOpTimeout(ctx.deadline));
        switch (payload.op) {
          case 'read': {
            const data = await files.read(rel, limits.maxTransferBytes);
            const text = payload.encoding === 'utf8' ? data.toString('utf8') : data.toString('base64');
            return { output: { path: rel, size: data.length, encoding: payload.encoding, content: text } };
          }
          case 'write':
          case 'upload': {
            let data: Buffer;
            if (payload.op === 'write') {
              data =
                payload.encoding === 'base64'
                  ? decodeBase64(payload.content, 'content')
                  : Buffer.from(payload.content, 'utf8');
            } else if (payload.artifact) {
              data = decodeBase64(payload.artifact.data, 'artifact.data');
            } else if (typeof payload.data === 'string') {
              data = decodeBase64(payload.data, 'data');
            } else if (payload.data) {
              data = Buffer.from(payload.data.data);
            } else {
              throw new FleetError(
                'invalid_payload',
                'upload needs data (base64 or a serialised Buffer) or artifact',
              );
            }
            const cap = Math.min(limits.maxTransferBytes, limits.maxFileBytes);
            if (data.length > cap) {
              throw new FleetError(
                'file_too_large',
                `${data.length} bytes is over the ${cap}-byte file cap`,
                {
                  details: { size: data.length, limit: cap },
                },
              );
            }
            // The workspace's own filesystem enforces the quota: a write past it fails with ENOSPC there.
            await files.write(rel, data, payload.overwrite);
            return { output: { path: rel, size: data.length, written: true } };
          }
          case 'download': {
            const data = await files.read(rel, limits.maxTransferBytes);
            const contentType = contentTypeFor(rel);
            const name = rel.split('/').pop() || 'file';
            return {
              output: { path: rel, size: data.length, contentType, artifact: name },
              artifacts: [{ name, contentType, data }],
            };
          }
          case 'list': {
            const listing = await files.list(rel, payload.recursive, payload.limit);
            return { output: { path: rel, ...listing } };
          }
          case 'stat':
            return { output: await files.stat(rel) };
          case 'delete':
            await files.delete(rel, payload.recursive);
            return { output: { path: rel, deleted: true } };
          case 'move': {
            const from = normalizeWorkspacePath(payload.from, 'from');
            const to = normalizeWorkspacePath(payload.to, 'to');
            await files.move(from, to, payload.overwrite);
            return { output: { from, to, moved: true } };
          }
          case 'mkdir': {
            if (rel === '') return { output: { path: '', created: false } };
            await files.mkdir(rel);
            return { output: { path: rel, created: true } };
          }
        }
      });
    },
  };
}

/** Time the runner gets for one file operation: what is left of the task, within sane bounds. */
export function fileOpTimeout(deadline: number): number {
  return Math.max(1000, Math.min(60_000, deadline - Date.now() - 200));
}
