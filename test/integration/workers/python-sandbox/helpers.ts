/* eslint-disable @typescript-eslint/no-explicit-any -- task outputs are JSON the tests inspect field by field */
/** Starts the python-sandbox kind behind the real worker runtime, with a private workspace. */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import {
  connectFakeManager,
  startWorker,
  type FakeManager,
  type TaskAnswer,
} from '../../../helpers/fake-manager.js';
import { WORKER_SECTIONS } from '../../../../src/config/schema.js';
import { createPythonSandboxKind } from '../../../../src/workers/python-sandbox/index.js';
import type { TaskErrorMessage } from '../../../../src/protocol/messages.js';

export interface Harness {
  fm: FakeManager;
  baseUrl: string;
  workspace: string;
  stop(): Promise<void>;
}

export async function startPythonWorker(sandbox: Record<string, unknown> = {}): Promise<Harness> {
  const workspace = mkdtempSync(join(tmpdir(), 'fleet-py-test-'));
  const config = WORKER_SECTIONS.python_sandbox.parse({
    port: 0,
    workspace,
    sandbox: { pool_size: 2, ...sandbox },
  });
  const kind = createPythonSandboxKind(config);
  const started = await startWorker(kind, { port: 0, workspace, sandbox: { pool_size: 2, ...sandbox } });
  const fm = await connectFakeManager(started.endpoint);
  return {
    fm,
    baseUrl: started.baseUrl,
    workspace,
    async stop() {
      await fm.close().catch(() => undefined);
      await started.stop();
      rmSync(workspace, { recursive: true, force: true });
    },
  };
}

export function ok(answer: TaskAnswer): Record<string, any> {
  if (answer.type !== 'task.result')
    throw new Error(`expected a result, got ${JSON.stringify(answer.error)}`);
  return answer.output as Record<string, any>;
}

export function fail(answer: TaskAnswer, code: string): TaskErrorMessage['error'] {
  if (answer.type !== 'task.error')
    throw new Error(`expected ${code}, got a result: ${JSON.stringify(answer.output).slice(0, 500)}`);
  expect(answer.error.code, JSON.stringify(answer.error).slice(0, 1000)).toBe(code);
  return answer.error;
}

let n = 0;
export function sid(prefix = 's'): string {
  return `${prefix}-${process.pid}-${++n}`;
}

/** Pids of host processes whose command line has `arg` as one of its words (a sandbox's marker, a runner path). */
export function hostProcessesWith(arg: string): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').includes(arg)) found.push(Number(name));
    } catch {
      // gone
    }
  }
  return found;
}
