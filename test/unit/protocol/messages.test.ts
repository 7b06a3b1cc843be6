import { describe, expect, it } from 'vitest';
import { deserialize, serialize } from '../../../src/protocol/codec.js';
import {
  ErrorBodySchema,
  HeartbeatSchema,
  HelloSchema,
  ManagerToWorkerSchema,
  PROTOCOL_VERSION,
  TaskAssignSchema,
  TaskCancelSchema,
  TaskErrorSchema,
  TaskProgressSchema,
  TaskResultSchema,
  WelcomeSchema,
  WireArtifactSchema,
  WorkerToManagerSchema,
  type Message,
} from '../../../src/protocol/messages.js';

const lease = { taskId: 't1', attempt: 1, leaseToken: 'l1' };

const workerMessages: Message[] = [
  {
    type: 'hello',
    protocolVersion: PROTOCOL_VERSION,
    workerId: 'w1',
    workerType: 'echo',
    capabilities: ['echo'],
    maxConcurrency: 8,
    version: '0.1.0',
    info: { isolation: 'none' },
    inFlight: [lease],
  },
  { type: 'heartbeat', inFlight: 2, cpu: 0.35, memory: 123_456_789, draining: false, info: { pool: 3 } },
  {
    type: 'task.progress',
    ...lease,
    percent: 50,
    message: 'half',
    log: { stream: 'stdout', data: 'hi\n' },
    partial: { rows: 3 },
  },
  {
    type: 'task.result',
    ...lease,
    output: { ok: true },
    artifacts: [{ name: 'a.png', contentType: 'image/png', size: 3, encoding: 'base64', data: 'AQID' }],
    durationMs: 12,
  },
  {
    type: 'task.error',
    ...lease,
    error: { code: 'timeout', message: 'slow', retryable: true, details: { limit: 1 } },
    durationMs: 5,
  },
  {
    type: 'error',
    error: { code: 'bad_frame', message: 'x', retryable: false },
    inReplyTo: 'task.assign',
    taskId: 't1',
  },
];

const managerMessages: Message[] = [
  { type: 'welcome', protocolVersion: PROTOCOL_VERSION, managerId: 'm1', heartbeatIntervalMs: 1000 },
  {
    type: 'task.assign',
    ...lease,
    capability: 'echo',
    payload: { a: 1 },
    deadline: 1_700_000_000_000,
    timeoutMs: 60_000,
    sessionId: 's1',
  },
  { type: 'task.cancel', taskId: 't1', leaseToken: 'l1', reason: 'user' },
  { type: 'drain', reason: 'scale down' },
  { type: 'resume' },
  { type: 'error', error: { code: 'invalid_message', message: 'x', retryable: false } },
];

describe('protocol messages', () => {
  it.each(workerMessages.map((m) => [m.type, m] as const))(
    'worker → manager %s round-trips through the codec',
    (_t, m) => {
      expect(deserialize(serialize(m), WorkerToManagerSchema)).toEqual({ ok: true, message: m });
    },
  );

  it.each(managerMessages.map((m) => [m.type, m] as const))(
    'manager → worker %s round-trips through the codec',
    (_t, m) => {
      expect(deserialize(serialize(m), ManagerToWorkerSchema)).toEqual({ ok: true, message: m });
    },
  );

  it("each direction refuses the other direction's messages as unknown", () => {
    const hello = deserialize(serialize(workerMessages[0]!), ManagerToWorkerSchema);
    expect(hello).toMatchObject({ ok: false, inReplyTo: 'hello', error: { code: 'unknown_message' } });
    const assign = deserialize(serialize(managerMessages[1]!), WorkerToManagerSchema);
    expect(assign).toMatchObject({ ok: false, inReplyTo: 'task.assign', error: { code: 'unknown_message' } });
  });

  it('hello needs a positive maxConcurrency and a non-empty worker id', () => {
    const base = workerMessages[0] as object;
    expect(HelloSchema.safeParse({ ...base, maxConcurrency: 0 }).success).toBe(false);
    expect(HelloSchema.safeParse({ ...base, workerId: '' }).success).toBe(false);
    expect(
      HelloSchema.safeParse({ ...base, capabilities: Array.from({ length: 101 }, (_, i) => `c${i}`) })
        .success,
    ).toBe(false);
  });

  it('heartbeat numbers are non-negative', () => {
    expect(HeartbeatSchema.safeParse({ type: 'heartbeat', inFlight: -1, cpu: 0, memory: 0 }).success).toBe(
      false,
    );
    expect(HeartbeatSchema.safeParse({ type: 'heartbeat', inFlight: 0, cpu: -0.1, memory: 0 }).success).toBe(
      false,
    );
    expect(HeartbeatSchema.safeParse({ type: 'heartbeat', inFlight: 0, cpu: 1.7, memory: 0 }).success).toBe(
      true,
    );
  });

  it('task.assign needs a lease (positive attempt, non-empty token), a capability and a positive timeout', () => {
    const base = managerMessages[1] as object;
    expect(TaskAssignSchema.safeParse(base).success).toBe(true);
    expect(TaskAssignSchema.safeParse({ ...base, attempt: 0 }).success).toBe(false);
    expect(TaskAssignSchema.safeParse({ ...base, attempt: 1.5 }).success).toBe(false);
    expect(TaskAssignSchema.safeParse({ ...base, leaseToken: '' }).success).toBe(false);
    expect(TaskAssignSchema.safeParse({ ...base, capability: '' }).success).toBe(false);
    expect(TaskAssignSchema.safeParse({ ...base, timeoutMs: 0 }).success).toBe(false);
    expect(TaskAssignSchema.safeParse({ ...base, taskId: 'x'.repeat(201) }).success).toBe(false);
    // The payload is the handler's business; any JSON is fine here.
    expect(TaskAssignSchema.safeParse({ ...base, payload: [1, 'two', null] }).success).toBe(true);
  });

  it('task.progress bounds percent to 0..100 and knows three log streams', () => {
    expect(TaskProgressSchema.safeParse({ type: 'task.progress', ...lease, percent: 101 }).success).toBe(
      false,
    );
    expect(
      TaskProgressSchema.safeParse({ type: 'task.progress', ...lease, log: { stream: 'stdin', data: '' } })
        .success,
    ).toBe(false);
    expect(TaskProgressSchema.safeParse({ type: 'task.progress', ...lease }).success).toBe(true);
  });

  it('task.result artifacts are base64 with a name, content type and size', () => {
    const artifact = { name: 'x', contentType: 'text/plain', size: 1, encoding: 'base64', data: 'eA==' };
    expect(WireArtifactSchema.safeParse(artifact).success).toBe(true);
    expect(WireArtifactSchema.safeParse({ ...artifact, encoding: 'hex' }).success).toBe(false);
    expect(WireArtifactSchema.safeParse({ ...artifact, name: '' }).success).toBe(false);
    expect(
      TaskResultSchema.safeParse({ type: 'task.result', ...lease, output: null, durationMs: -1 }).success,
    ).toBe(false);
  });

  it('errors carry code, message and retryable; task.error also the lease', () => {
    expect(ErrorBodySchema.safeParse({ code: 'x', message: 'y' }).success).toBe(false);
    expect(ErrorBodySchema.safeParse({ code: '', message: 'y', retryable: true }).success).toBe(false);
    expect(
      ErrorBodySchema.safeParse({ code: 'x', message: 'y'.repeat(10_001), retryable: true }).success,
    ).toBe(false);
    expect(
      TaskErrorSchema.safeParse({
        type: 'task.error',
        taskId: 't',
        error: { code: 'x', message: 'y', retryable: false },
        durationMs: 0,
      }).success,
    ).toBe(false);
  });

  it('welcome needs a positive heartbeat interval; task.cancel needs only the task id', () => {
    expect(
      WelcomeSchema.safeParse({ type: 'welcome', protocolVersion: 1, managerId: 'm', heartbeatIntervalMs: 0 })
        .success,
    ).toBe(false);
    expect(TaskCancelSchema.safeParse({ type: 'task.cancel', taskId: 't' }).success).toBe(true);
  });

  it('an invalid message names the failing field', () => {
    const decoded = deserialize(
      JSON.stringify({ ...managerMessages[1], timeoutMs: 'soon' }),
      ManagerToWorkerSchema,
    );
    expect(decoded.ok).toBe(false);
    if (!decoded.ok) {
      expect(decoded.error.code).toBe('invalid_message');
      expect(decoded.error.message).toMatch(/"task\.assign" message at timeoutMs/);
      expect(decoded.inReplyTo).toBe('task.assign');
    }
  });
});
