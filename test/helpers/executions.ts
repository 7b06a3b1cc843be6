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
  /** `<taskId> <attempt>` pairs that ran more than once: one dispatch executed twice. */
  attemptDuplicates(): [string, number][];
  total(): number;
  cleanup(): void;
}

export function executionLog(): ExecutionLog {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-exec-'));
  const file = join(dir, 'executions.log');
  const tally = (key: (fields: string[]) => string) => {
    const out = new Map<string, number>();
    if (!existsSync(file)) return out;
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const fields = line.split(' ');
      if (fields[0]) out.set(key(fields), (out.get(key(fields)) ?? 0) + 1);
    }
    return out;
  };
  const counts = () => tally((f) => f[0]!);
  return {
    file,
    counts,
    duplicates: () => [...counts()].filter(([, n]) => n > 1),
    attemptDuplicates: () => [...tally((f) => `${f[0]} ${f[1]}`)].filter(([, n]) => n > 1),
    total: () => [...counts().values()].reduce((a, b) => a + b, 0),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
