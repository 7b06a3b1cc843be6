/**
 * `POST /api/tasks` (with and without `?wait=1`): the route every HTTP client's `submit` and `execute` take,
 * once per task. Its logic (`submitAnswer`) is shared by two paths:
 *
 * - fastify's route in server.ts, which answers every request;
 * - a lean path on node:http's `request` event, in front of fastify (`leanSubmitRoute`), for the plain
 *   request a client sends: a JSON body with its length, at most the body limit, a query of `wait` and
 *   `timeoutMs` only, and a token that passes. It reads the body, parses it with fastify's own JSON parser
 *   and answers with `res.end` — no routing, request and reply objects or hook chain, which cost the manager
 *   more CPU per task than the submission itself (docs/performance.md, "Third pass").
 *
 * Whatever the lean path cannot answer exactly as fastify would it leaves to fastify, untouched (nothing read
 * yet): another content type or an empty or chunked body, a body over the limit, any other query string,
 * a missing or wrong token, and every request once the server has begun to close. After the headers, the order is fastify's: the body is parsed first (bad JSON
 * answers before the query is looked at), then the query, then the submission. Errors are worded and
 * numbered by the same `errorReply` as fastify's error handler.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { WorkerManager } from '../manager.js';
import { parseInput, WaitQuery } from './api-schemas.js';
import { authorize, type AuthOptions } from './auth.js';
import { errorReply } from './error-reply.js';
import { publicTask } from './views.js';

export const SUBMIT_PATH = '/api/tasks';

export type WaitQueryValue = ReturnType<typeof WaitQuery.parse>;

export interface SubmitAnswer {
  status: number;
  body: unknown;
}

/** The query of `POST /api/tasks`, checked (`invalid_task` naming the field). */
export function parseWaitQuery(query: unknown): WaitQueryValue {
  return parseInput(WaitQuery, query, 'query');
}

/**
 * Submits (and with `wait`, waits for) the task a request carries, and gives the answer both paths send to
 * `reply` in the microtask the manager's promise settles in. An `await` chain here took two more, and the
 * work a worker's result queues behind the waiter (the dispatcher's next pump) ran before the answer went
 * out. Rejects with the submission's error.
 */
export function submitAnswer(
  manager: WorkerManager,
  q: WaitQueryValue,
  body: unknown,
  reply: (answer: SubmitAnswer) => void,
): Promise<void> {
  const wait = q.wait === 'true' || q.wait === '1';
  const done = wait
    ? manager.submitAndWait(body ?? {}, q.timeoutMs !== undefined ? { timeoutMs: q.timeoutMs } : {})
    : manager.submit(body ?? {});
  return done.then(({ task, created }) =>
    reply({ status: wait || !created ? 200 : 201, body: { task: publicTask(task), created } }),
  );
}

/** fastify's default JSON body parser (`app.getDefaultJsonParser`): same errors, same prototype-poisoning rules. */
export type JsonBodyParser = (
  req: never,
  body: string,
  done: (err: Error | null, value?: unknown) => void,
) => void;

export interface LeanSubmitOptions extends AuthOptions {
  bodyLimit: number;
  parseJson: JsonBodyParser;
  /** True once the server has begun to close: fastify then answers with `Connection: close`. */
  closing: () => boolean;
}

/** The content types sent by FleetClient and the other clients; fastify parses both as JSON. */
const JSON_TYPES = new Set(['application/json', 'application/json; charset=utf-8']);
/**
 * Query strings whose parse is beyond doubt: `wait` and `timeoutMs`, each once, values of letters and digits
 * (nothing to decode, no arrays). fastify's query parser reads them the same way.
 */
const SIMPLE_QUERY = /^(?:(wait|timeoutMs)=([A-Za-z0-9]*)(?:&(?!\1=)(wait|timeoutMs)=([A-Za-z0-9]*))?)?$/;
const DIGITS = /^[1-9][0-9]{0,15}$/;

function simpleQuery(raw: string): Record<string, string> | undefined {
  const m = SIMPLE_QUERY.exec(raw);
  if (!m) return undefined;
  const q: Record<string, string> = {};
  if (m[1] !== undefined) q[m[1]] = m[2]!;
  if (m[3] !== undefined) q[m[3]] = m[4]!;
  return q;
}

function authorized(options: AuthOptions, req: IncomingMessage): boolean {
  if (!options.token) return true;
  try {
    authorize(options, req, 'write');
    return true;
  } catch {
    return false;
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const json = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(json),
  });
  res.end(json);
}

/** A body that could not be read or parsed: fastify closes the connection (the client may send more). */
function sendBodyError(res: ServerResponse, err: unknown): void {
  const e = errorReply(err);
  const json = JSON.stringify(e.body);
  res.writeHead(e.status, {
    connection: 'close',
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(json),
  });
  res.end(json);
}

/**
 * The lean path: returns false, having touched nothing, for a request it leaves to fastify; true once it
 * has taken the request (it then answers it).
 */
export function leanSubmitRoute(
  manager: WorkerManager,
  options: LeanSubmitOptions,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  // Clients repeat one query string (FleetClient: `wait=true&timeoutMs=<its slice>`): the last one that
  // parsed is kept with its value.
  let lastRaw: string | undefined;
  let lastQuery: WaitQueryValue | undefined;
  const waitQuery = (raw: string, q: Record<string, string>): WaitQueryValue => {
    const parsed = parseWaitQuery(q);
    lastRaw = raw;
    lastQuery = parsed;
    return parsed;
  };

  /** `known`: the query's value when it is the last one parsed; else `q`, its fields, is parsed here. */
  const answer = (
    res: ServerResponse,
    raw: string,
    known: WaitQueryValue | undefined,
    q: Record<string, string> | undefined,
    text: string,
  ) => {
    let body: unknown;
    let bad: Error | null = null;
    options.parseJson(undefined as never, text, (err, value) => {
      bad = err;
      body = value;
    });
    if (bad) {
      sendBodyError(res, bad);
      return;
    }
    let query: WaitQueryValue;
    try {
      query = known ?? waitQuery(raw, q!);
    } catch (err) {
      const e = errorReply(err);
      send(res, e.status, e.body);
      return;
    }
    submitAnswer(manager, query, body, (a) => send(res, a.status, a.body)).catch((err: unknown) => {
      // An answer that failed once written (it cannot be) is not written twice.
      if (res.headersSent) return void res.destroy();
      const e = errorReply(err);
      send(res, e.status, e.body);
    });
  };

  return (req, res) => {
    if (req.method !== 'POST' || options.closing()) return false;
    const url = req.url ?? '';
    const mark = url.indexOf('?');
    const pathEnd = mark < 0 ? url.length : mark;
    if (pathEnd !== SUBMIT_PATH.length || !url.startsWith(SUBMIT_PATH)) return false;
    const raw = mark < 0 ? '' : url.slice(mark + 1);
    const known = raw === lastRaw ? lastQuery : undefined;
    const q = known ? undefined : simpleQuery(raw);
    if (!known && !q) return false;
    const h = req.headers;
    const type = h['content-type'];
    const length = h['content-length'];
    if (type === undefined || !JSON_TYPES.has(type) || h['transfer-encoding'] !== undefined) return false;
    if (length === undefined || !DIGITS.test(length) || Number(length) > options.bodyLimit) return false;
    if (!authorized(options, req)) return false;

    const chunks: Buffer[] = [];
    let read = false;
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      read = true;
      const text = chunks.length === 1 ? chunks[0]!.toString('utf8') : Buffer.concat(chunks).toString('utf8');
      answer(res, raw, known, q, text);
    });
    // What fastify does with a request that breaks off mid-body: a 400 (to a client that has gone).
    req.on('error', (err: Error & { statusCode?: number }) => {
      if (read) return;
      read = true;
      if (!(typeof err.statusCode === 'number' && err.statusCode >= 400)) err.statusCode = 400;
      sendBodyError(res, err);
    });
    return true;
  };
}
