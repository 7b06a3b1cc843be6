/**
 * The one execution core behind all three doors. A call is: find the tool, validate its arguments
 * (`invalid_payload` naming the field), take one of the shared slots, run under a deadline signal that
 * also carries the caller's cancel, and release the slot however it ended.
 */
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { FleetError, toFleetError } from '../../../protocol/errors.js';
import { FigmaClient, type FigmaClientDeps } from '../client/figma-client.js';
import type { FigmaOptions } from '../options.js';
import { deadlineSignal } from './abort.js';
import { CallLimiter } from './call-limiter.js';
import { TOOLS, type ToolDef, type ToolResult } from './tools.js';

export interface CoreCall {
  signal: AbortSignal;
  /** Absolute deadline; default now + the worker's task timeout. */
  deadline?: number;
  progress?: (percent: number, message: string) => void;
}

export interface FigmaCoreOptions {
  options: FigmaOptions;
  maxConcurrent: number;
  timeoutMs: number;
  workspace: string;
  logger?: Logger;
  clientDeps?: FigmaClientDeps;
}

export function formatIssues(error: z.ZodError, prefix = ''): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${prefix}${i.path.length ? i.path.join('.') : '(arguments)'}: ${i.message}`)
    .join('; ');
}

export class FigmaCore {
  readonly client: FigmaClient;
  readonly limiter: CallLimiter;
  readonly tools: readonly ToolDef[] = TOOLS;
  private readonly byName = new Map<string, ToolDef>(TOOLS.map((t) => [t.name, t]));
  calls = 0;
  failures = 0;

  constructor(private readonly cfg: FigmaCoreOptions) {
    this.client = new FigmaClient(cfg.options, {
      ...(cfg.logger ? { logger: cfg.logger } : {}),
      ...cfg.clientDeps,
    });
    this.limiter = new CallLimiter(cfg.maxConcurrent, cfg.options.max_waiting_calls);
  }

  tool(name: string): ToolDef {
    const short = name.startsWith('figma_') ? name : `figma_${name}`;
    const t = this.byName.get(short);
    if (!t)
      throw new FleetError(
        'invalid_payload',
        `operation: unknown tool "${name.slice(0, 60)}" (known: ${[...this.byName.keys()].join(', ')})`,
      );
    return t;
  }

  async call(name: string, rawArgs: unknown, call: CoreCall): Promise<ToolResult> {
    const tool = this.tool(name);
    const parsed = tool.input.safeParse(rawArgs ?? {});
    if (!parsed.success)
      throw new FleetError('invalid_payload', `${tool.name}: ${formatIssues(parsed.error)}`, {
        details: {
          tool: tool.name,
          fields: [...new Set(parsed.error.issues.map((i) => i.path.join('.') || '(arguments)'))],
        },
      });
    const deadline = call.deadline ?? Date.now() + this.cfg.timeoutMs;
    const guard = deadlineSignal(call.signal, deadline);
    this.calls++;
    let release: (() => void) | undefined;
    try {
      release = await this.limiter.acquire(guard.signal);
      return await tool.run(parsed.data, {
        client: this.client,
        options: this.cfg.options,
        workspace: resolve(this.cfg.workspace),
        signal: guard.signal,
        deadline,
        progress: (percent, message) => call.progress?.(percent, message),
      });
    } catch (err) {
      this.failures++;
      // An abort surfaces as whatever the fetch threw; report the reason the signal carries instead.
      if (
        guard.signal.aborted &&
        !(err instanceof FleetError && (err.code === 'cancelled' || err.code === 'timeout'))
      ) {
        const reason: unknown = guard.signal.reason;
        throw reason instanceof FleetError ? reason : toFleetError(err);
      }
      throw toFleetError(err, 'handler_error');
    } finally {
      release?.();
      guard.dispose();
    }
  }
}
