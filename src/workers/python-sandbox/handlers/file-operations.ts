/**
 * `file-operations`: read, write, list, stat, delete, move, mkdir, upload and download inside the
 * session's workspace (a sessionId is required; the session is created on first use). Every path is
 * relative to the workspace and checked by `resolveWorkspacePath`; sizes are capped by
 * `max_transfer_mb` (per transfer), `max_file_mb` and `workspace_mb`.
 */
import { z } from 'zod';
import { FleetError } from '../../../protocol/errors.js';
import type { TaskHandler } from '../../common/worker-kind.js';
import { requireSessionId, withSession, type SandboxServices } from '../services.js';
import {
  describe,
  directorySize,
  fileError,
  listDir,
  mkdirOwned,
  movePath,
  readFileSafe,
  removePath,
  resolveWorkspacePath,
  writeFileSafe,
} from '../workspace.js';
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

function decodeBase64(text: string, field: string): Buffer {
  if (!/^[A-Za-z0-9+/\s]*={0,2}\s*$/.test(text))
    throw new FleetError('invalid_payload', `${field} is not valid base64`);
  return Buffer.from(text, 'base64');
}

export function createFileOperationsHandler(services: SandboxServices): TaskHandler<FileOperationsPayload> {
  const { limits } = services;
  return {
    capability: 'file-operations',
    description:
      'Reads, writes, lists, stats, deletes, moves, uploads and downloads files inside a session workspace (paths relative to it; no escapes, links out or devices).',
    payloadSchema: FileOperationsPayloadSchema,
    async run(payload, ctx) {
      const sessionId = requireSessionId(ctx, 'file-operations');
      const create =
        payload.op === 'write' || payload.op === 'upload' || payload.op === 'mkdir' || payload.op === 'list';
      return withSession(services, sessionId, { create }, async (session) => {
        const workDir = session.sandbox.dirs.workDir;
        const uid = services.runtime.chain?.dropUid ? session.sandbox.uid : undefined;
        const checkWrite = async (size: number, replacing: number): Promise<void> => {
          if (size > limits.maxTransferBytes || size > limits.maxFileBytes) {
            throw new FleetError(
              'file_too_large',
              `${size} bytes is over the ${Math.min(limits.maxTransferBytes, limits.maxFileBytes)}-byte file cap`,
              {
                details: { size, limit: Math.min(limits.maxTransferBytes, limits.maxFileBytes) },
              },
            );
          }
          const used = await directorySize(workDir, limits.workspaceBytes * 2);
          if (used - replacing + size > limits.workspaceBytes) {
            throw new FleetError(
              'workspace_full',
              `writing ${size} bytes would put the workspace over its ${limits.workspaceBytes}-byte limit`,
              {
                details: { used, size, limit: limits.workspaceBytes },
              },
            );
          }
        };
        switch (payload.op) {
          case 'read': {
            const p = await resolveWorkspacePath(workDir, payload.path);
            const data = await readFileSafe(p.host, p.rel, limits.maxTransferBytes);
            const asText = payload.encoding === 'utf8';
            const text = asText ? data.toString('utf8') : data.toString('base64');
            return { output: { path: p.rel, size: data.length, encoding: payload.encoding, content: text } };
          }
          case 'write':
          case 'upload': {
            const p = await resolveWorkspacePath(workDir, payload.path);
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
            const existing = await describe(p.host, p.rel).catch(() => undefined);
            if (existing && existing.type !== 'file')
              throw new FleetError('conflict', `"${p.rel}" exists and is a ${existing.type}`);
            await checkWrite(data.length, existing?.size ?? 0);
            await writeFileSafe(p.host, p.rel, data, { uid, overwrite: payload.overwrite, workDir });
            return { output: { path: p.rel, size: data.length, written: true } };
          }
          case 'download': {
            const p = await resolveWorkspacePath(workDir, payload.path);
            const data = await readFileSafe(p.host, p.rel, limits.maxTransferBytes);
            const contentType = contentTypeFor(p.rel);
            const name = p.rel.split('/').pop() || 'file';
            return {
              output: { path: p.rel, size: data.length, contentType, artifact: name },
              artifacts: [{ name, contentType, data }],
            };
          }
          case 'list': {
            const p = await resolveWorkspacePath(workDir, payload.path);
            const info = await describe(p.host, p.rel).catch((err: unknown) => {
              throw fileError(err, p.rel || '.');
            });
            if (info.type !== 'directory')
              throw new FleetError('invalid_payload', `"${p.rel}" is not a directory`);
            const listing = await listDir(p.host, p.rel, payload.recursive, payload.limit);
            return { output: { path: p.rel, ...listing } };
          }
          case 'stat': {
            const p = await resolveWorkspacePath(workDir, payload.path);
            const info = await describe(p.host, p.rel).catch((err: unknown) => {
              throw fileError(err, p.rel);
            });
            return { output: info };
          }
          case 'delete': {
            const p = await resolveWorkspacePath(workDir, payload.path);
            await removePath(p.host, p.rel, payload.recursive);
            return { output: { path: p.rel, deleted: true } };
          }
          case 'move': {
            const from = await resolveWorkspacePath(workDir, payload.from, 'from');
            const to = await resolveWorkspacePath(workDir, payload.to, 'to');
            await movePath(from, to, payload.overwrite, workDir, uid);
            return { output: { from: from.rel, to: to.rel, moved: true } };
          }
          case 'mkdir': {
            const p = await resolveWorkspacePath(workDir, payload.path);
            if (p.rel === '') return { output: { path: '', created: false } };
            await mkdirOwned(workDir, p.host, uid);
            return { output: { path: p.rel, created: true } };
          }
        }
      });
    },
  };
}
