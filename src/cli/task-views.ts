/** Tasks for the terminal: the list as a table, one task as a short record, a failure as one line. */
import Table from 'cli-table3';
import type { ClientTask } from '../client/fleet-client.js';
import type { FleetErrorShape } from '../protocol/errors.js';

export function ago(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86_400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86_400)}d`;
}

export function duration(task: Pick<ClientTask, 'startedAt' | 'finishedAt'>, now: number): string {
  if (task.startedAt === undefined) return '-';
  const ms = (task.finishedAt ?? now) - task.startedAt;
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;
}

export function renderTaskTable(tasks: ClientTask[], now = Date.now()): string {
  if (tasks.length === 0) return '(no tasks)';
  const table = new Table({
    head: ['ID', 'State', 'Capability', 'Worker', 'Attempt', 'Duration', 'Age'],
    style: { head: [], border: [] },
  });
  for (const t of tasks) {
    table.push([
      t.id,
      t.state,
      t.capability,
      t.workerId ?? '-',
      `${t.attempt}/${t.maxAttempts}`,
      duration(t, now),
      ago(now - t.createdAt),
    ]);
  }
  return table.toString();
}

/** The error a finished, unsuccessful task reports (a cancel or a timeout may have none of its own). */
export function taskError(task: ClientTask): Pick<FleetErrorShape, 'code' | 'message'> {
  if (task.error) return task.error;
  if (task.state === 'cancelled') return { code: 'cancelled', message: `task ${task.id} was cancelled` };
  if (task.state === 'timed_out')
    return { code: 'timeout', message: `task ${task.id} ran past its deadline` };
  return { code: 'internal', message: `task ${task.id} ended ${task.state}` };
}

/** Artifact URLs made absolute, so a printed result can be fetched as it stands. */
export function withAbsoluteUrls(task: ClientTask, base: string): ClientTask {
  if (!task.artifacts) return task;
  const root = base.replace(/\/+$/, '');
  return {
    ...task,
    artifacts: task.artifacts.map((a) => ({ ...a, url: /^https?:/.test(a.url) ? a.url : `${root}${a.url}` })),
  };
}

/** What `submit` prints for a task that succeeded: the answer, not the bookkeeping. */
export function resultView(task: ClientTask): Record<string, unknown> {
  return {
    id: task.id,
    state: task.state,
    output: task.output,
    ...(task.artifacts?.length ? { artifacts: task.artifacts } : {}),
  };
}

/** `fleet task <id>`: the record people read; --json gives the whole one. */
export function renderTask(task: ClientTask, now = Date.now()): string {
  const lines: [string, string][] = [
    ['id', task.id],
    ['state', task.state],
    ['capability', task.capability],
    ['worker', task.workerId ?? '-'],
    ['attempt', `${task.attempt}/${task.maxAttempts}`],
    ['created', `${new Date(task.createdAt).toISOString()} (${ago(now - task.createdAt)} ago)`],
    ['duration', duration(task, now)],
  ];
  if (task.sessionId) lines.push(['session', task.sessionId]);
  if (task.progress && task.state === 'running') {
    const p = task.progress;
    lines.push([
      'progress',
      [p.percent !== undefined ? `${p.percent}%` : '', p.message ?? ''].join(' ').trim(),
    ]);
  }
  if (task.error)
    lines.push(['error', `${task.error.code}: ${task.error.message.replace(/\s*\n\s*/g, ' ')}`]);
  for (const a of task.artifacts ?? [])
    lines.push(['artifact', `${a.name} (${a.contentType}, ${a.size} B) ${a.url}`]);
  const failed = task.attempts.filter((a) => a.error);
  if (task.attempts.length > 1 || failed.length > 0) {
    for (const a of task.attempts) {
      lines.push([
        `attempt ${a.attempt}`,
        `${a.workerId} ${a.outcome ?? 'running'}${a.error ? ` (${a.error.code})` : ''}`,
      ]);
    }
  }
  if (task.state === 'succeeded' && task.output !== undefined) {
    const out = JSON.stringify(task.output);
    lines.push(['output', out.length > 200 ? `${out.slice(0, 200)}… (--json for all)` : out]);
  }
  const width = Math.max(...lines.map(([k]) => k.length));
  return lines.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}
