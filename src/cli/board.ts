/** The spec's Worker Status Board, for the terminal: worker, status, load %, tasks n/m, plus heartbeat age. */
import Table from 'cli-table3';
import type { ClientWorker } from '../client/fleet-client.js';

const STATUS_TEXT: Record<ClientWorker['status'], string> = {
  online: '✅ Online',
  busy: '⚠️ Busy',
  offline: '❌ Offline',
  error: '🛑 Error',
};

function age(iso: string, now: number): string {
  const s = Math.max(0, Math.round((now - new Date(iso).getTime()) / 1000));
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.round(s / 60)}m` : `${Math.round(s / 3600)}h`;
}

export function renderBoard(
  status: { workers: ClientWorker[]; queue: { depth: number; byCapability: Record<string, number> } },
  now = Date.now(),
): string {
  const table = new Table({
    head: ['Worker', 'Status', 'Load', 'Tasks', 'Heartbeat', 'Endpoint'],
    style: { head: [], border: [] },
  });
  const workers = [...status.workers].sort(
    (a, b) => a.workerType.localeCompare(b.workerType) || a.workerId.localeCompare(b.workerId),
  );
  for (const w of workers) {
    const id = w.workerId === w.workerType ? w.workerType : `${w.workerType} (${w.workerId})`;
    table.push([
      id,
      // A draining worker is not busy: it finishes what it runs and takes nothing new.
      w.draining && w.status !== 'offline' && w.status !== 'error'
        ? '⏸️ Draining'
        : (STATUS_TEXT[w.status] ?? w.status),
      `${Math.round(w.currentLoad * 100)}%`,
      `${w.inFlight}/${w.maxConcurrency}`,
      age(w.lastHeartbeat, now),
      w.endpoint,
    ]);
  }
  const queued = Object.entries(status.queue.byCapability)
    .filter(([, n]) => n > 0)
    .map(([c, n]) => `${c}=${n}`)
    .join(' ');
  const lines = [
    workers.length === 0 ? '(no workers registered)' : table.toString(),
    `Queue: ${status.queue.depth} waiting${queued ? ` (${queued})` : ''}`,
  ];
  return lines.join('\n');
}
