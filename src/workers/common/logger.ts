/**
 * Worker logs are pino JSON on stderr: stdout stays free for a CLI that prints results, and a supervisor
 * (`fleet up`, Docker, Kubernetes) collects stderr line by line. Synchronous writes so the last lines before
 * a crash or `process.exit` are not lost in a buffer.
 */
import { pino, type Logger } from 'pino';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
type LevelName = (typeof LEVELS)[number];

function isLevel(value: string | undefined): value is LevelName {
  return value !== undefined && (LEVELS as readonly string[]).includes(value);
}

export function createLogger(name: string, level?: string): Logger {
  const fromEnv = process.env.FLEET_LOG_LEVEL?.trim().toLowerCase();
  const chosen = isLevel(level) ? level : isLevel(fromEnv) ? fromEnv : 'info';
  return pino({ name, level: chosen }, pino.destination({ dest: 2, sync: true }));
}
