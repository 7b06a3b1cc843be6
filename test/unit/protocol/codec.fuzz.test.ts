import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { deserialize, serialize } from '../../../src/protocol/codec.js';
import { FleetError } from '../../../src/protocol/errors.js';
import {
  ManagerToWorkerSchema,
  WorkerToManagerSchema,
  type Message,
} from '../../../src/protocol/messages.js';

const FRAME_ERRORS = ['bad_frame', 'frame_too_large', 'invalid_message', 'unknown_message'];
const TYPES = [
  'hello',
  'heartbeat',
  'welcome',
  'task.assign',
  'task.cancel',
  'task.progress',
  'task.result',
  'task.error',
  'drain',
  'resume',
  'error',
];
const schemas = [ManagerToWorkerSchema, WorkerToManagerSchema] as const;

function check(frame: string | Buffer | ArrayBuffer | Buffer[], maxBytes?: number): void {
  for (const schema of schemas) {
    let decoded: ReturnType<typeof deserialize>;
    try {
      decoded = deserialize(frame, schema, maxBytes);
    } catch (err) {
      throw new Error(`deserialize threw on a ${typeof frame} frame: ${String(err)}`);
    }
    if (decoded.ok) {
      expect(decoded.message).toBeTypeOf('object');
      expect(schema.safeParse(decoded.message).success).toBe(true);
    } else {
      expect(decoded.error).toBeInstanceOf(FleetError);
      expect(FRAME_ERRORS).toContain(decoded.error.code);
      expect(decoded.error.message.length).toBeGreaterThan(0);
      if (decoded.inReplyTo !== undefined) expect(decoded.inReplyTo.length).toBeLessThanOrEqual(100);
    }
  }
}

/** Objects that look like protocol messages: a known (or near-known) type with random fields. */
const messageLike = fc.record(
  {
    type: fc.oneof(fc.constantFrom(...TYPES), fc.string()),
    taskId: fc.oneof(fc.string(), fc.integer(), fc.constant(null)),
    attempt: fc.oneof(fc.integer(), fc.double(), fc.string()),
    leaseToken: fc.string(),
    capability: fc.string(),
    payload: fc.jsonValue(),
    protocolVersion: fc.oneof(fc.integer(), fc.string()),
    error: fc.oneof(
      fc.jsonValue(),
      fc.record({ code: fc.string(), message: fc.string(), retryable: fc.boolean() }),
    ),
  },
  { requiredKeys: ['type'] },
);

describe('deserialize never throws and always answers ok or a typed frame error', () => {
  it('arbitrary strings', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 500 }), (s) => check(s)),
      { numRuns: 500 },
    );
  });

  it('arbitrary bytes, as a Buffer, an ArrayBuffer and fragments', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 500 }), (bytes) => {
        const buf = Buffer.from(bytes);
        check(buf);
        check(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
        check([buf.subarray(0, buf.length >> 1), buf.subarray(buf.length >> 1)]);
      }),
      { numRuns: 300 },
    );
  });

  it('arbitrary JSON values', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => check(JSON.stringify(v))),
      { numRuns: 500 },
    );
  });

  it('message-shaped objects with wrong or random fields', () => {
    fc.assert(
      fc.property(messageLike, (m) => check(JSON.stringify(m))),
      { numRuns: 1000 },
    );
  });

  it('anything over the byte limit is frame_too_large, without parsing', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 11, maxLength: 200 }), (s) => {
        const decoded = deserialize(s, ManagerToWorkerSchema, 10);
        expect(decoded.ok).toBe(false);
        if (!decoded.ok) expect(decoded.error.code).toBe('frame_too_large');
      }),
    );
  });

  it('valid messages survive serialize → deserialize unchanged', () => {
    const assign = fc.record({
      type: fc.constant('task.assign' as const),
      taskId: fc.string({ minLength: 1, maxLength: 200 }),
      attempt: fc.integer({ min: 1, max: 100 }),
      leaseToken: fc.string({ minLength: 1, maxLength: 200 }),
      capability: fc.string({ minLength: 1, maxLength: 100 }),
      payload: fc.jsonValue(),
      deadline: fc.integer({ min: 0 }),
      timeoutMs: fc.integer({ min: 1 }),
    });
    fc.assert(
      fc.property(assign, (m) => {
        const decoded = deserialize(serialize(m as Message), ManagerToWorkerSchema);
        expect(decoded.ok).toBe(true);
        // JSON has no -0; compare through JSON.
        if (decoded.ok)
          expect(JSON.parse(JSON.stringify(decoded.message))).toEqual(JSON.parse(JSON.stringify(m)));
      }),
      { numRuns: 300 },
    );
  });
});
