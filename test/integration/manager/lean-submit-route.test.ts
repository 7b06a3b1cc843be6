/**
 * `POST /api/tasks` is answered in front of fastify for plain requests (src/manager/http/submit-route.ts).
 * The same request goes to two API servers of one manager, one with the lean route and one without; every
 * answer must be the same (status, headers, body), and a hook on fastify's `onRequest` tells which requests
 * the lean route answered (fastify never saw them) and which it left to fastify.
 */
import http from 'node:http';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { createApiServer } from '../../../src/manager/http/server.js';
import { WorkerManager } from '../../../src/manager/manager.js';
import { WorkerServer } from '../../../src/workers/common/server.js';
import { createEchoKind } from '../../../src/workers/echo/index.js';
import { waitFor } from '../../helpers/processes.js';

const TOKEN = 'operator-token';
const READ_TOKEN = 'read-only-token';
const BODY_LIMIT = 4096;

interface Answer {
  status: number;
  /** Header names in order, with their values; the date left out. */
  headers: [string, string][];
  body: string;
}

interface Side {
  api: FastifyInstance;
  url: string;
  /** Requests fastify itself received. */
  seen: number;
}

function request(
  url: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string; chunked?: boolean; method?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const body = options.body ?? '';
    const headers: Record<string, string> = { ...options.headers };
    if (!options.chunked && options.body !== undefined)
      headers['content-length'] = String(Buffer.byteLength(body));
    const req = http.request(
      `${url}${path}`,
      { method: options.method ?? 'POST', headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const pairs: [string, string][] = [];
          for (let i = 0; i < res.rawHeaders.length; i += 2) {
            const name = res.rawHeaders[i]!.toLowerCase();
            if (name !== 'date') pairs.push([name, res.rawHeaders[i + 1]!]);
          }
          resolve({
            status: res.statusCode ?? 0,
            headers: pairs,
            body: Buffer.concat(chunks).toString('utf8'),
          });
        });
      },
    );
    req.on('error', reject);
    if (options.chunked) {
      // Two writes without a content length: Transfer-Encoding: chunked.
      req.write(body.slice(0, 5));
      req.end(body.slice(5));
    } else req.end(options.body);
  });
}

const json = { 'content-type': 'application/json' };
const auth = (token = TOKEN) => ({ authorization: `Bearer ${token}` });

describe('POST /api/tasks: the lean route answers as fastify does', () => {
  let manager: WorkerManager;
  let worker: WorkerServer;
  let lean: Side;
  let full: Side;

  async function serve(leanSubmitRoute: boolean, plugin?: (app: FastifyInstance) => void): Promise<Side> {
    const side = { seen: 0 } as Side;
    side.api = await createApiServer(manager, {
      token: TOKEN,
      readToken: READ_TOKEN,
      bodyLimitBytes: BODY_LIMIT,
      leanSubmitRoute,
      plugins: [
        (app) => {
          app.addHook('onRequest', async () => {
            side.seen += 1;
          });
        },
        ...(plugin ? [plugin] : []),
      ],
    });
    side.url = await side.api.listen({ host: '127.0.0.1', port: 0 });
    return side;
  }

  beforeAll(async () => {
    const config = parseConfig({
      manager: { port: 0, log_level: 'silent', queue: { max_size: 3 } },
      echo: { port: 0, max_concurrent_tasks: 4 },
    });
    const silent = pino({ level: 'silent' });
    worker = new WorkerServer({ kind: createEchoKind(config.echo), config: config.echo, logger: silent });
    await worker.start();
    manager = new WorkerManager(config, { logger: silent });
    await manager.start();
    await manager.registerWorker({ endpoint: worker.endpoint });
    await waitFor(() => manager.localWorkers().some((w) => w.status === 'online'), 10_000, 'worker online');
    lean = await serve(true);
    full = await serve(false);
  });

  afterAll(async () => {
    await manager.stop();
    await lean.api.close();
    await full.api.close();
    await worker.stop();
  });

  /** Sends the same request to both servers; returns both answers and whether fastify saw the lean one. */
  async function both(path: string, options: Parameters<typeof request>[2]) {
    const before = lean.seen;
    const a = await request(lean.url, path, options);
    const viaFastify = lean.seen > before;
    const b = await request(full.url, path, options);
    return { lean: a, full: b, viaFastify };
  }

  const errors: [string, string, Parameters<typeof request>[2], number, string][] = [
    [
      'bad JSON',
      '/api/tasks',
      { headers: { ...json, ...auth() }, body: '{"capability":' },
      400,
      'invalid_task',
    ],
    [
      'bad JSON before a bad query',
      '/api/tasks?timeoutMs=abc',
      { headers: { ...json, ...auth() }, body: 'nope' },
      400,
      'invalid_task',
    ],
    [
      'a prototype-poisoning body',
      '/api/tasks',
      { headers: { ...json, ...auth() }, body: '{"capability":"echo","__proto__":{"x":1}}' },
      400,
      'invalid_task',
    ],
    [
      'an unknown capability',
      '/api/tasks',
      { headers: { ...json, ...auth() }, body: '{"capability":"no-such-thing"}' },
      400,
      'unknown_capability',
    ],
    [
      'an invalid task (id not a string)',
      '/api/tasks?wait=true',
      { headers: { ...json, ...auth() }, body: '{"capability":"echo","id":42}' },
      400,
      'invalid_task',
    ],
    [
      'an invalid task (priority)',
      '/api/tasks',
      {
        headers: { 'content-type': 'application/json; charset=utf-8', ...auth() },
        body: '{"capability":"echo","priority":"high"}',
      },
      400,
      'invalid_task',
    ],
    ['a null body', '/api/tasks', { headers: { ...json, ...auth() }, body: 'null' }, 400, 'invalid_task'],
    ['an array body', '/api/tasks', { headers: { ...json, ...auth() }, body: '[1]' }, 400, 'invalid_task'],
    [
      'an invalid payload (its schema)',
      '/api/tasks',
      { headers: { ...json, ...auth() }, body: '{"capability":"sleep","payload":{"ms":"long"}}' },
      400,
      'invalid_payload',
    ],
    [
      'a payload past the depth limit',
      '/api/tasks',
      {
        headers: { ...json, ...auth() },
        body: `{"capability":"echo","payload":${'['.repeat(200)}${']'.repeat(200)}}`,
      },
      400,
      'invalid_task',
    ],
    [
      'an invalid timeoutMs',
      '/api/tasks?wait=1&timeoutMs=99999999999',
      { headers: { ...json, ...auth() }, body: '{"capability":"echo"}' },
      400,
      'invalid_task',
    ],
  ];

  it.each(errors)(
    '%s: the lean route answers it, word for word',
    async (_what, path, options, status, code) => {
      const r = await both(path, options);
      expect(r.viaFastify).toBe(false);
      expect(r.lean).toEqual(r.full);
      expect(r.lean.status).toBe(status);
      expect((JSON.parse(r.lean.body) as { error: { code: string } }).error.code).toBe(code);
    },
  );

  const leftToFastify: [string, string, Parameters<typeof request>[2], number, string][] = [
    ['no token', '/api/tasks', { headers: json, body: '{"capability":"echo"}' }, 401, 'unauthorized'],
    [
      'a wrong token',
      '/api/tasks',
      { headers: { ...json, ...auth('nope') }, body: '{"capability":"echo"}' },
      401,
      'unauthorized',
    ],
    [
      'the read-only token',
      '/api/tasks',
      { headers: { ...json, ...auth(READ_TOKEN) }, body: '{"capability":"echo"}' },
      401,
      'unauthorized',
    ],
    [
      'another content type',
      '/api/tasks',
      { headers: { 'content-type': 'text/plain', ...auth() }, body: '{"capability":"echo"}' },
      400,
      'invalid_task',
    ],
    [
      'no content type',
      '/api/tasks',
      { headers: auth(), body: '{"capability":"echo"}' },
      400,
      'invalid_task',
    ],
    ['an empty JSON body', '/api/tasks', { headers: { ...json, ...auth() }, body: '' }, 400, 'invalid_task'],
    [
      'a body over the limit',
      '/api/tasks',
      {
        headers: { ...json, ...auth() },
        body: JSON.stringify({ capability: 'echo', payload: 'x'.repeat(BODY_LIMIT) }),
      },
      413,
      'payload_too_large',
    ],
    [
      'a chunked body over the limit',
      '/api/tasks',
      {
        headers: { ...json, ...auth() },
        body: JSON.stringify({ capability: 'echo', payload: 'x'.repeat(BODY_LIMIT) }),
        chunked: true,
      },
      413,
      'payload_too_large',
    ],
    [
      'a query with another key',
      '/api/tasks?wait=true&limit=1',
      { headers: { ...json, ...auth() }, body: '{"capability":"no-such-thing"}' },
      400,
      'unknown_capability',
    ],
    [
      'a query key twice',
      '/api/tasks?wait=true&wait=1',
      { headers: { ...json, ...auth() }, body: '{"capability":"echo"}' },
      400,
      'invalid_task',
    ],
  ];

  it.each(leftToFastify)(
    '%s: left to fastify, answered the same',
    async (_what, path, options, status, code) => {
      const r = await both(path, options);
      expect(r.viaFastify).toBe(true);
      expect(r.lean).toEqual(r.full);
      expect(r.lean.status).toBe(status);
      expect((JSON.parse(r.lean.body) as { error: { code: string } }).error.code).toBe(code);
    },
  );

  /** The answer with what differs between two tasks (their ids, times, lengths) put to fixed values. */
  function normalized(a: Answer): unknown {
    const body = JSON.parse(a.body) as {
      task: Record<string, unknown> & { attempts: Record<string, unknown>[] };
    };
    const times = (o: Record<string, unknown>) => {
      for (const k of Object.keys(o)) if (k.endsWith('At') || k === 'notBefore') o[k] = 0;
    };
    body.task.id = '<id>';
    times(body.task);
    for (const attempt of body.task.attempts) times(attempt);
    const length = a.headers.find(([n]) => n === 'content-length')?.[1];
    expect(Number(length)).toBe(Buffer.byteLength(a.body));
    return { status: a.status, headers: a.headers.filter(([n]) => n !== 'content-length'), body };
  }

  it('answers a submission (201), a wait (200, final) and a wait that runs out (200, not final) the same way', async () => {
    const submit = await both('/api/tasks', {
      headers: { ...json, ...auth() },
      body: '{"capability":"echo","payload":{"n":1}}',
    });
    expect(submit.viaFastify).toBe(false);
    expect(submit.lean.status).toBe(201);
    expect(normalized(submit.lean)).toEqual(normalized(submit.full));

    const wait = await both('/api/tasks?wait=true&timeoutMs=10000', {
      headers: { ...json, ...auth() },
      body: '{"capability":"echo","payload":{"n":2}}',
    });
    expect(wait.viaFastify).toBe(false);
    expect(wait.lean.status).toBe(200);
    expect(JSON.parse(wait.lean.body)).toMatchObject({
      created: true,
      task: { state: 'succeeded', output: { n: 2 } },
    });
    expect(normalized(wait.lean)).toEqual(normalized(wait.full));

    // Chunked: a body without a length is fastify's to read.
    const chunked = await both('/api/tasks?wait=1', {
      headers: { ...json, ...auth() },
      body: '{"capability":"echo","payload":{"n":3}}',
      chunked: true,
    });
    expect(chunked.viaFastify).toBe(true);
    expect(normalized(chunked.lean)).toEqual(normalized(chunked.full));

    const timedOut = await both('/api/tasks?wait=1&timeoutMs=100', {
      headers: { ...json, ...auth() },
      body: '{"capability":"sleep","payload":{"ms":400}}',
    });
    expect(timedOut.viaFastify).toBe(false);
    for (const a of [timedOut.lean, timedOut.full]) {
      expect(a.status).toBe(200);
      const t = JSON.parse(a.body) as { created: boolean; task: { state: string } };
      expect(t.created).toBe(true);
      expect(['queued', 'assigned', 'running']).toContain(t.task.state);
    }
    // The states may differ by timing; everything else is the same.
    const withoutState = (a: Answer) => {
      const n = normalized(a) as { body: { task: Record<string, unknown> } };
      for (const k of ['state', 'attempt', 'attempts', 'workerId']) delete n.body.task[k];
      return n;
    };
    expect(withoutState(timedOut.lean)).toEqual(withoutState(timedOut.full));
    await manager.waitForTask((JSON.parse(timedOut.lean.body) as { task: { id: string } }).task.id, {
      timeoutMs: 5000,
    });
    await manager.waitForTask((JSON.parse(timedOut.full.body) as { task: { id: string } }).task.id, {
      timeoutMs: 5000,
    });
  });

  it('answers queue_full the same way', async () => {
    const [w] = manager.localWorkers();
    await manager.drainWorker(w!.workerId);
    try {
      // The queue holds 3: fill it from the side that is not under test, then ask both.
      for (let i = 0; i < 3; i++) await manager.submit({ capability: 'echo', payload: { i } });
      const r = await both('/api/tasks', { headers: { ...json, ...auth() }, body: '{"capability":"echo"}' });
      expect(r.viaFastify).toBe(false);
      expect(r.lean).toEqual(r.full);
      expect(r.lean.status).toBe(429);
      expect(JSON.parse(r.lean.body)).toMatchObject({ error: { code: 'queue_full', retryable: true } });
    } finally {
      await manager.resumeWorker(w!.workerId);
    }
  });

  it('runs on a server made with the timeouts fastify gives its own', async () => {
    const plain = Fastify({ logger: false });
    await plain.listen({ host: '127.0.0.1', port: 0 });
    try {
      const settings = (s: http.Server) => ({
        keepAliveTimeout: s.keepAliveTimeout,
        requestTimeout: s.requestTimeout,
        headersTimeout: s.headersTimeout,
        timeout: s.timeout,
        maxRequestsPerSocket: s.maxRequestsPerSocket,
      });
      expect(settings(lean.api.server)).toEqual(settings(plain.server));
    } finally {
      await plain.close();
    }
  });

  it('leaves other methods and paths to fastify', async () => {
    for (const [method, path] of [
      ['POST', '/api/tasks/'],
      ['POST', '/api/tasks:batch'],
      ['PUT', '/api/tasks'],
      ['GET', '/api/tasks?limit=1&state=failed'],
    ] as const) {
      const r = await both(path, {
        method,
        headers: { ...json, ...auth() },
        ...(method === 'GET' ? {} : { body: '{"tasks":[{"capability":"no-such-thing"}]}' }),
      });
      expect(r.viaFastify).toBe(true);
      expect(r.lean).toEqual(r.full);
    }
  });

  it('leaves requests to fastify while the server closes (it answers them with Connection: close)', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    // A preClose hook that waits holds the server in its closing state while a request comes in.
    const closing = await serve(true, (app) => app.addHook('preClose', async () => held));
    const closed = closing.api.close();
    await new Promise((r) => setTimeout(r, 50));
    const before = closing.seen;
    const a = await request(closing.url, '/api/tasks', {
      headers: { ...json, ...auth() },
      body: '{"capability":"no-such-thing"}',
    });
    expect(closing.seen).toBe(before + 1);
    expect(a.status).toBe(400);
    expect(a.headers).toContainEqual(['connection', 'close']);
    release();
    await closed;
  });
});
