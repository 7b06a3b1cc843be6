/**
 * Fleet's logs go to stderr: stdout stays free for a CLI that prints results, and a supervisor (`fleet up`,
 * Docker, Kubernetes) collects stderr line by line. Two formats: pino's JSON, for machines (the default when
 * stderr is not a terminal), and pino-pretty's one line per event with the key fields only, for people (the
 * default on a terminal). `--log-format` / FLEET_LOG_FORMAT (`pretty`, `json`, `auto`) choose. Writes are
 * synchronous so the last lines before a crash or `process.exit` are not lost in a buffer.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import { build as prettyStream } from 'pino-pretty';
import { FleetError } from '../../protocol/errors.js';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
type LevelName = (typeof LEVELS)[number];

export const LOG_FORMATS = ['auto', 'pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

function isLevel(value: string | undefined): value is LevelName {
  return value !== undefined && (LEVELS as readonly string[]).includes(value);
}

/** FLEET_LOG_FORMAT (or `explicit`) resolved against whether stderr is a terminal. */
export function resolveLogFormat(
  explicit: string | undefined = process.env.FLEET_LOG_FORMAT,
  isTTY: boolean = process.stderr.isTTY === true,
): 'pretty' | 'json' {
  const wanted = (explicit ?? 'auto').trim().toLowerCase() || 'auto';
  if (!(LOG_FORMATS as readonly string[]).includes(wanted)) {
    throw new FleetError(
      'config_invalid',
      `log format "${explicit}" is not one of ${LOG_FORMATS.join(', ')} (--log-format, FLEET_LOG_FORMAT)`,
    );
  }
  if (wanted === 'auto') return isTTY ? 'pretty' : 'json';
  return wanted as 'pretty' | 'json';
}

/** Fields worth a person's attention; the rest stays in the JSON format. */
const KEY_FIELDS = [
  'workerId',
  'workerType',
  'endpoint',
  'address',
  'taskId',
  'capability',
  'code',
  'reason',
  'signal',
  'port',
  'isolation',
  'err',
];
const MAX_FIELD = 80;

function short(value: unknown): string {
  const text =
    value instanceof Object && 'message' in value && typeof value.message === 'string'
      ? value.message
      : typeof value === 'string'
        ? value
        : JSON.stringify(value);
  const one = (text ?? '').replace(/\s*\n\s*/g, ' ');
  return one.length > MAX_FIELD ? `${one.slice(0, MAX_FIELD - 1)}…` : one;
}

/** One line: `who: message key=value …`, with only KEY_FIELDS and each value cut short. */
export function prettyLine(log: Record<string, unknown>, messageKey = 'msg'): string {
  const who = typeof log.name === 'string' ? log.name.replace(/^fleet-worker-/, '') : 'manager';
  const fields = KEY_FIELDS.filter((k) => log[k] !== undefined)
    .map((k) => `${k}=${short(log[k])}`)
    .join(' ');
  const msg = log[messageKey];
  return `${who}: ${typeof msg === 'string' ? msg : msg === undefined ? '' : JSON.stringify(msg)}${fields ? `  ${fields}` : ''}`;
}

/** Where a logger writes, in the chosen format. */
export function logDestination(format: 'pretty' | 'json' = resolveLogFormat()): DestinationStream {
  if (format === 'json') return pino.destination({ dest: 2, sync: true });
  return prettyStream({
    destination: 2,
    sync: true,
    colorize: process.stderr.isTTY === true,
    translateTime: 'HH:MM:ss.l',
    // The name is in the message (prettyLine); the object is hidden, its key fields are in the message too.
    // (singleLine stays off: with hideObject, pino-pretty 13 then ends the line without a newline.)
    ignore: 'pid,hostname,name',
    hideObject: true,
    messageFormat: (log, messageKey) => prettyLine(log, messageKey),
  });
}

export function createLogger(name: string, level?: string): Logger {
  const fromEnv = process.env.FLEET_LOG_LEVEL?.trim().toLowerCase();
  const chosen = isLevel(level) ? level : isLevel(fromEnv) ? fromEnv : 'info';
  return pino({ name, level: chosen }, logDestination());
}
