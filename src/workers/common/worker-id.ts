/**
 * A worker's id names the configured worker, not the process: `<name>-<host>-<port>` stays the same across
 * restarts, so scripts that hold an id and metric series labelled with it keep working. Only one process can
 * listen on a host's port at a time, so two live workers never share one. A worker on an OS-chosen port (0)
 * has no stable address before it listens and keeps a random suffix.
 */
import { randomUUID } from 'node:crypto';

export function stableWorkerId(name: string, host: string, port: number): string {
  const suffix = port > 0 ? String(port) : randomUUID().slice(0, 8);
  return `${name}-${host}-${suffix}`.replace(/[^A-Za-z0-9._:-]/g, '-').slice(0, 200);
}
