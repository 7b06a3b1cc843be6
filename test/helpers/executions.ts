/**
 * Worker-side execution counting for the chaos and run-once tests: echo workers started with
 * FLEET_ECHO_EXECUTION_LOG append `<taskId> <attempt> <pid>` to one file each time a handler starts, so a
 * test sees how often each task really ran, across worker processes and restarts.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ExecutionLog {
  file: string;
  /** Handler runs per task id. */
  counts(): Map<string, number>;
  /** Task ids that ran more than once, with their run counts. */
  duplicates(): [string, number][];
  total(): number;
  cleanup(): void;
}

export function executionLog(): ExecutionLog {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-exec-'));
  const file = join(dir, 'executions.log');
  const counts = () => {
    const out = new Map<string, number>();
    if (!existsSync(file)) return out;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const id = line.split(' ')[0];
      if (id) out.set(id, (out.get(id) ?? 0) + 1);
    }
    return out;
  };
  return {
    file,
    counts,
    duplicates: () => [...counts()].filter(([, n]) => n > 1),
    total: () => [...counts().values()].reduce((a, b) => a + b, 0),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
