/**
 * `python-execution`: runs code in a sandboxed interpreter. Without a sessionId the run is one-shot (a
 * fresh interpreter, destroyed after); with one, the session's interpreter keeps its variables.
 *
 * Error model: a Python exception (including SyntaxError) is an *outcome*, not a task failure: the result
 * has `ok: false` and `error { type, message, traceback, line?, column? }` next to stdout, stderr, figures
 * and files. Pass `failOnError: true` to turn it into a task error (`python_error` / `syntax_error`, with
 * the same output in `details`). Task errors are reserved for the sandbox stopping the code: `timeout`,
 * `cancelled`, `oom_killed`, `process_limit`, `file_too_large`, `workspace_full`, and the session errors.
 */
import { z } from 'zod';
import { FleetError, type ErrorCode } from '../../../protocol/errors.js';
import type { Artifact, TaskContext, TaskHandler, TaskOutput } from '../../common/worker-kind.js';
import type { ExecOutcome, Sandbox } from '../sandbox.js';
import { bump, withSession, type SandboxServices } from '../services.js';
import type { EndReason, Session } from '../sessions.js';
import { workspaceUsage } from '../workspace.js';
import { normalizeWorkspacePath, WorkspaceFiles } from '../workspace-files.js';
import { fileOpTimeout } from './file-operations.js';
import { contentTypeFor } from './files-util.js';

export const PythonExecutionPayloadSchema = z
  .object({
    code: z.string().max(2_000_000).optional(),
    /** Shorter than the task's own timeout, never longer. */
    timeoutMs: z.number().int().positive().optional(),
    failOnError: z.boolean().default(false),
    /** Return open matplotlib figures as PNG artifacts. */
    figures: z.boolean().default(true),
    /** Workspace files to return as artifacts after the run. */
    collect: z.array(z.string().min(1).max(4096)).max(20).optional(),
    /** Fail with session_not_found instead of creating the session. */
    requireSession: z.boolean().default(false),
    /** Start over after the session expired or was killed. */
    resetSession: z.boolean().default(false),
    /** End the session after this run (or, without code, just end it). */
    closeSession: z.boolean().default(false),
  })
  .strict()
  .refine((p) => p.code !== undefined || p.closeSession, {
    message: 'code is required (unless closeSession is true)',
    path: ['code'],
  });

export type PythonExecutionPayload = z.infer<typeof PythonExecutionPayloadSchema>;

const RunErrorSchema = z.object({
  type: z.string().describe('the exception class, e.g. ZeroDivisionError'),
  message: z.string(),
  traceback: z.string().optional(),
  line: z.number().nullable().optional(),
  column: z.number().nullable().optional(),
  errno: z.number().optional(),
});

const WrittenFileSchema = z.object({
  path: z.string().describe('relative to the workspace'),
  size: z.number(),
  change: z.enum(['created', 'modified']),
});

/** What a run returns; a python_error/syntax_error (failOnError) carries most of it in `details`. */
export const PythonRunResultSchema = z.object({
  ok: z.boolean().describe('false when the code raised (see error)'),
  stdout: z.string(),
  stderr: z.string(),
  truncated: z.boolean().describe('stdout/stderr were cut at the output cap'),
  durationMs: z.number(),
  exitStatus: z.number(),
  sessionId: z.string().optional(),
  value: z.string().optional().describe('the value of the last expression, as JSON'),
  valueType: z.string().optional(),
  error: RunErrorSchema.optional(),
  figures: z.array(z.string()).describe('names of the PNG artifacts, one per open figure'),
  files: z.array(WrittenFileSchema).describe('workspace files the run created or changed'),
  killedProcesses: z.number().optional().describe('stray processes the code left behind, killed'),
});

/** What closeSession without code returns. */
const SessionClosedSchema = z.object({ closed: z.literal(true), sessionId: z.string() });

export const PythonExecutionResultSchema = z.union([PythonRunResultSchema, SessionClosedSchema]);
export type PythonExecutionResult = z.infer<typeof PythonExecutionResultSchema>;

export function createPythonExecutionHandler(
  services: SandboxServices,
): TaskHandler<PythonExecutionPayload, PythonExecutionResult> {
  return {
    capability: 'python-execution',
    description:
      'Runs Python 3 code in an isolated sandbox (one-shot, or stateful with a sessionId); streams stdout/stderr and returns the last expression value, output, figures as PNG and written files.',
    payloadSchema: PythonExecutionPayloadSchema,
    resultSchema: PythonExecutionResultSchema,
    // Figures come back as PNG; `collect` returns workspace files of any type.
    artifactTypes: ['image/png', '*'],
    async run(payload, ctx) {
      services.runtime.requireChain();
      if (payload.code === undefined) {
        const sessionId = ctx.sessionId;
        if (!sessionId)
          throw new FleetError('invalid_payload', 'closeSession without code needs a sessionId');
        const closed = await services.sessions.close(sessionId);
        if (!closed)
          throw new FleetError('session_not_found', `no session "${sessionId}"`, { details: { sessionId } });
        return { output: { closed: true, sessionId } };
      }
      const code = payload.code;
      if (!ctx.sessionId) {
        const sandbox = await services.runtime.acquire();
        try {
          return await runCode(services, sandbox, undefined, code, payload, ctx);
        } finally {
          await services.runtime.destroy(sandbox);
        }
      }
      const sessionId = ctx.sessionId;
      const result = await withSession(
        services,
        sessionId,
        { create: !payload.requireSession, reset: payload.resetSession },
        (session) => runCode(services, session.sandbox, session, code, payload, ctx),
      );
      if (payload.closeSession) await services.sessions.close(sessionId);
      return result;
    },
  };
}

async function runCode(
  services: SandboxServices,
  sandbox: Sandbox,
  session: Session | undefined,
  code: string,
  payload: PythonExecutionPayload,
  ctx: TaskContext,
): Promise<TaskOutput<z.infer<typeof PythonRunResultSchema>>> {
  const { limits, options } = services;
  const now = Date.now();
  const deadline = Math.min(
    ctx.deadline,
    payload.timeoutMs ? now + payload.timeoutMs : Number.POSITIVE_INFINITY,
  );
  const budget = Math.max(1, deadline - now);
  // Leave room before the runtime's deadline: KeyboardInterrupt first, then the kill, then the answer.
  const grace = Math.min(options.interrupt_grace, Math.floor(budget * 0.25));
  // The kill and its report must land before the runtime answers a bare timeout, even on a loaded host.
  const hardAt = deadline - Math.min(500, Math.floor(budget * 0.15));
  const softAt = Math.max(now, hardAt - grace);
  const collect = (payload.collect ?? []).map((p) => normalizeWorkspacePath(p, 'collect'));
  const usageBefore = workspaceUsage(sandbox.dirs);
  const outcome = await sandbox.exec(code, {
    softAt,
    hardAt,
    signal: ctx.signal,
    interruptGraceMs: options.interrupt_grace,
    figures: payload.figures,
    files: true,
    onOutput: (stream, data) => ctx.progress({ log: { stream, data } }),
  });
  if (session) session.runs++;
  // Only the interpreter (and its threads) outlives a run of a session; one-shot sandboxes die whole.
  const reapedOutside = session && outcome.status === 'done' ? await sandbox.reapStrays() : 0;
  const usageAfter = workspaceUsage(sandbox.dirs);
  const files = outcome.files;
  const full = (u: typeof usageAfter) => u !== undefined && (u.freeBytes < 64 * 1024 || u.freeInodes === 0);
  const enospc = outcome.error?.errno === 28 || outcome.error?.errno === 122;
  // The filesystem already refused the write (ENOSPC); this tells the task why, even if the code caught it.
  // A workspace that was already full before the run is only reported if the run hit the wall again.
  const overQuota = enospc || (full(usageAfter) && !full(usageBefore));
  const usage = usageAfter?.usedBytes;
  const common = {
    stdout: outcome.stdout,
    stderr: outcome.stderr,
    truncated: outcome.truncated,
    durationMs: outcome.durationMs,
    exitStatus: outcome.exitStatus,
    ...(session ? { sessionId: session.id } : {}),
  };

  const failure = classify(outcome, overQuota, limits);
  if (failure) {
    bump(services.counters.executions, failure.code);
    const sessionSurvived = outcome.status === 'done' && sandbox.alive;
    if (outcome.status === 'killed') bump(services.counters.kills, outcome.killReason ?? 'died');
    if (session && !sessionSurvived) await services.sessions.kill(session, endReason(failure.code));
    throw new FleetError(failure.code, failure.message, {
      details: {
        ...common,
        ...(outcome.error ? { error: outcome.error } : {}),
        sessionSurvived,
        files,
        ...(usage !== undefined
          ? { workspaceBytes: usage, workspaceFreeInodes: usageAfter?.freeInodes }
          : {}),
      },
    });
  }

  const artifacts: Artifact[] = outcome.figures.map((f) => ({
    name: f.name,
    contentType: 'image/png',
    data: f.data,
  }));
  // Collected by the runner, inside the sandbox: a one-shot sandbox is still alive here.
  const workspace = new WorkspaceFiles(sandbox, fileOpTimeout(ctx.deadline));
  for (const rel of collect) {
    const data = await workspace.read(rel, limits.maxTransferBytes);
    artifacts.push({ name: rel.split('/').pop() || 'file', contentType: contentTypeFor(rel), data });
  }
  if (!outcome.ok && payload.failOnError) {
    const code: ErrorCode = outcome.syntax ? 'syntax_error' : 'python_error';
    bump(services.counters.executions, code);
    throw new FleetError(
      code,
      `${outcome.error?.type ?? 'Error'}: ${outcome.error?.message ?? ''}`.slice(0, 2000),
      {
        details: { ...common, error: outcome.error, files, sessionSurvived: true },
      },
    );
  }
  bump(services.counters.executions, outcome.ok ? 'ok' : outcome.syntax ? 'syntax_error' : 'python_error');
  return {
    output: {
      ok: outcome.ok,
      ...common,
      ...(outcome.value !== undefined ? { value: outcome.value, valueType: outcome.valueType } : {}),
      ...(outcome.error ? { error: outcome.error } : {}),
      figures: outcome.figures.map((f) => f.name),
      files,
      ...(outcome.reaped + reapedOutside > 0 ? { killedProcesses: outcome.reaped + reapedOutside } : {}),
    },
    artifacts,
  };
}

function classify(
  outcome: ExecOutcome,
  overQuota: boolean,
  limits: SandboxServices['limits'],
): { code: ErrorCode; message: string } | undefined {
  const memory = `${Math.round(limits.memoryBytes / 1024 / 1024)} MB`;
  if (outcome.killReason === 'workspace_full' || overQuota) {
    return {
      code: 'workspace_full',
      message: `the workspace is full (its limit is ${Math.round(limits.workspaceBytes / 1024 / 1024)} MB and ${limits.workspaceInodes} files); delete files to continue`,
    };
  }
  if (outcome.cgroup.oomKills > 0 || outcome.killReason === 'oom' || outcome.error?.type === 'MemoryError') {
    return {
      code: 'oom_killed',
      message: `the code used more than its ${memory} memory limit and was killed`,
    };
  }
  if (outcome.killReason === 'timeout' || outcome.killReason === 'cpu_limit') {
    return {
      code: 'timeout',
      message:
        outcome.status === 'done'
          ? 'the code ran past its deadline and was interrupted (KeyboardInterrupt); the session survives'
          : 'the code ran past its deadline and ignored the interrupt; its process tree was killed',
    };
  }
  if (outcome.killReason === 'cancelled') return { code: 'cancelled', message: 'the run was cancelled' };
  if (
    outcome.cgroup.pidsMaxHits > 0 ||
    (outcome.error?.type === 'BlockingIOError' && outcome.error.errno === 11)
  ) {
    return {
      code: 'process_limit',
      message: `the code hit the limit of ${limits.maxProcesses} processes; extra processes were killed`,
    };
  }
  if (outcome.error?.errno === 27) {
    return {
      code: 'file_too_large',
      message: `the code wrote a file over the ${Math.round(limits.maxFileBytes / 1024 / 1024)} MB file size limit`,
    };
  }
  if (outcome.status === 'killed') {
    return { code: 'handler_error', message: 'the interpreter died during the run' };
  }
  return undefined;
}

function endReason(code: ErrorCode): EndReason {
  if (code === 'timeout' || code === 'cancelled') return 'killed: timeout';
  if (code === 'oom_killed') return 'killed: oom';
  if (code === 'process_limit') return 'killed: process limit';
  return 'killed: died';
}
