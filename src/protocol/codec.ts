/**
 * The one serialize/deserialize pair. Decoding never throws: it returns a typed error that the edge turns
 * into an `error` reply, so a bad frame costs only itself.
 */
import type { z } from 'zod';
import { FleetError } from './errors.js';
import { ManagerToWorkerSchema, WorkerToManagerSchema, type Message } from './messages.js';
import { isPlainTaskAssign, isPlainTaskResult } from './plain-frames.js';

/** Per inbound schema, the check of its one frame per task that may skip zod (plain-frames.ts). */
const PLAIN_FRAMES = new Map<z.ZodType, (frame: Record<string, unknown>) => boolean>([
  [WorkerToManagerSchema, isPlainTaskResult],
  [ManagerToWorkerSchema, isPlainTaskAssign],
]);

/** Default cap on one frame; artifacts ride inside results, so it is generous but bounded. */
export const DEFAULT_MAX_FRAME_BYTES = 32 * 1024 * 1024;
/** What a worker reads: a task.assign with a payload at the manager's default `submission.max_bytes`, plus room. */
export const DEFAULT_MAX_INBOUND_FRAME_BYTES = 9 * 1024 * 1024;

export type Decoded<T> = { ok: true; message: T } | { ok: false; error: FleetError; inReplyTo?: string };

export function serialize(message: Message): string {
  return JSON.stringify(message);
}

export function byteLength(frame: string | Buffer | ArrayBuffer | Buffer[]): number {
  if (typeof frame === 'string') return Buffer.byteLength(frame);
  if (Array.isArray(frame)) return frame.reduce((n, b) => n + b.length, 0);
  return frame instanceof ArrayBuffer ? frame.byteLength : frame.length;
}

export function deserialize<S extends z.ZodType>(
  frame: string | Buffer | ArrayBuffer | Buffer[],
  schema: S,
  maxBytes: number = DEFAULT_MAX_FRAME_BYTES,
): Decoded<z.infer<S>> {
  const size = byteLength(frame);
  if (size > maxBytes) {
    return {
      ok: false,
      error: new FleetError('frame_too_large', `frame of ${size} bytes is over the ${maxBytes}-byte limit`, {
        details: { size, limit: maxBytes },
      }),
    };
  }
  // A Buffer is read in place: Buffer.from(buffer) would copy it first.
  const text =
    typeof frame === 'string'
      ? frame
      : Array.isArray(frame)
        ? Buffer.concat(frame).toString('utf8')
        : Buffer.isBuffer(frame)
          ? frame.toString('utf8')
          : Buffer.from(frame).toString('utf8');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { ok: false, error: new FleetError('bad_frame', `frame is not JSON: ${(err as Error).message}`) };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, error: new FleetError('bad_frame', 'frame is not a JSON object') };
  }
  const type = (raw as { type?: unknown }).type;
  if (typeof type !== 'string') {
    return { ok: false, error: new FleetError('invalid_message', 'frame has no string "type"') };
  }
  if (PLAIN_FRAMES.get(schema)?.(raw as Record<string, unknown>))
    return { ok: true, message: raw as z.infer<S> };
  const parsed = schema.safeParse(raw);
  if (parsed.success) return { ok: true, message: parsed.data };
  const unknownType = parsed.error.issues.some(
    (i) => i.code === 'invalid_union' && i.path.length === 1 && i.path[0] === 'type',
  );
  if (unknownType) {
    return {
      ok: false,
      inReplyTo: type.slice(0, 100),
      error: new FleetError('unknown_message', `unknown message type "${type.slice(0, 100)}"`),
    };
  }
  const first = parsed.error.issues[0];
  const where = first && first.path.length > 0 ? first.path.join('.') : '(root)';
  return {
    ok: false,
    inReplyTo: type.slice(0, 100),
    error: new FleetError(
      'invalid_message',
      `invalid "${type.slice(0, 100)}" message at ${where}: ${first?.message ?? 'invalid'}`,
      {
        details: {
          issues: parsed.error.issues
            .slice(0, 5)
            .map((i) => ({ path: i.path.join('.'), message: i.message })),
        },
      },
    ),
  };
}
