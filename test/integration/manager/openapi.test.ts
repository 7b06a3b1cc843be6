/**
 * Issue 18 point 3: `GET /api/openapi.json` is a valid OpenAPI 3.1 document generated from the routes' own zod
 * schemas, it names every route the server registers, and what the routes really answer matches it.
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { WebSocket } from 'ws';
import { z } from 'zod';
import { afterEach, describe, expect, it } from 'vitest';
import { dashboardPlugin } from '../../../src/manager/dashboard/index.js';
import { API_ROUTES } from '../../../src/manager/http/api-schemas.js';
import {
  buildOpenApiDocument,
  openApiPath,
  registeredRoutes,
  undocumentedRoutes,
  type CapabilitySchemaDoc,
} from '../../../src/manager/http/openapi.js';
import { startManager, type TestManager } from '../../helpers/manager.js';
import { spawnWorker, type WorkerProcess } from '../../helpers/processes.js';

type Doc = {
  openapi: string;
  paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: unknown }> } }>>;
  components: { schemas: Record<string, unknown> };
};

async function expectValidOpenApi(doc: unknown): Promise<void> {
  const validator = new Validator();
  const result = await validator.validate(doc as Record<string, unknown>);
  expect(result.errors ?? []).toEqual([]);
  expect(result.valid).toBe(true);
  expect(validator.version).toBe('3.1');
}

/** Checks a real response body against the document's schema for that operation and status. */
function responseChecker(doc: Doc) {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addSchema({ ...doc, $id: 'https://fleet.local/openapi.json' });
  return (operationId: string, status: number, body: unknown) => {
    const route = API_ROUTES.find((r) => r.operationId === operationId)!;
    const ref = status in route.responses ? `${operationId}.${status}` : 'Error';
    const validate = ajv.getSchema(`https://fleet.local/openapi.json#/components/schemas/${ref}`)!;
    const ok = validate(body);
    expect({ operationId, status, errors: ok ? null : validate.errors }).toEqual({
      operationId,
      status,
      errors: null,
    });
  };
}

/** Every route fastify's router holds, read from its printed tree: a second count, independent of the hook. */
function routerRoutes(tree: string): Set<string> {
  const out = new Set<string>();
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^(.*?)[├└]── (.*?)(?: \(([^)]*)\))?$/.exec(line);
    if (!m) continue;
    const depth = [...m[1]!].length / 4;
    stack.length = depth;
    const url = (stack[depth - 1] ?? '') + m[2]!;
    stack[depth] = url;
    for (const method of (m[3] ?? '').split(', ').filter((x) => x && x !== 'HEAD'))
      out.add(`${method} ${url}`);
  }
  return out;
}

async function call(
  m: TestManager,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`${m.url}${path}`, {
    method,
    ...(body !== undefined
      ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }
      : {}),
  });
  return { status: res.status, json: await res.json() };
}

describe('GET /api/openapi.json (issue 18 point 3)', () => {
  let m: TestManager | undefined;
  const procs: WorkerProcess[] = [];
  afterEach(async () => {
    for (const p of procs.splice(0)) p.kill('SIGKILL');
    await m?.stop();
    m = undefined;
  });

  it('is a valid OpenAPI 3.1 document, served by the manager', async () => {
    m = await startManager({}, { api: (manager) => ({ plugins: [dashboardPlugin(manager)] }) });
    const res = await fetch(`${m.url}/api/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as Doc;
    expect(doc.openapi).toBe('3.1.0');
    await expectValidOpenApi(doc);
    // The validator is no rubber stamp: a document with a broken operation is refused.
    const broken = structuredClone(doc);
    broken.paths['/api/tasks']!.get = { responses: 'none' } as never;
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  it('names every route the server registers, and serves every route it names', async () => {
    m = await startManager({}, { api: (manager) => ({ plugins: [dashboardPlugin(manager)] }) });
    const doc = (await (await fetch(`${m.url}/api/openapi.json`)).json()) as Doc;
    const routes = registeredRoutes(m.api);
    // The hook saw the whole server: the core routes and the dashboard plugin's.
    expect(routes.length).toBeGreaterThan(15);
    expect(routes).toContainEqual({ method: 'GET', url: '/dashboard/api/tasks' });
    // The hook saw every route the router has (none was registered before it).
    // The router prints fastify's `::` (a literal colon) as one colon.
    expect(new Set(routes.map((r) => `${r.method} ${r.url.replaceAll('::', ':')}`))).toEqual(
      routerRoutes(m.api.printRoutes({ commonPrefix: false })),
    );
    expect(undocumentedRoutes(m.api)).toEqual([]);
    for (const r of routes.filter((r) => !r.url.startsWith('/dashboard'))) {
      expect(doc.paths[openApiPath(r.url)]?.[r.method.toLowerCase()], `${r.method} ${r.url}`).toBeDefined();
    }
    for (const r of API_ROUTES) {
      // The event stream is an HTTP upgrade handled beside fastify, so it is not a fastify route.
      expect(m.api.hasRoute({ method: r.method, url: r.url }), `${r.method} ${r.url}`).toBe(!r.upgrade);
    }
    const events = API_ROUTES.find((r) => r.upgrade)!;
    const ws = new WebSocket(`${m.url.replace('http', 'ws')}${events.url}`);
    const hello = await new Promise<string>((resolve, reject) => {
      ws.once('message', (d: Buffer) => resolve(d.toString()));
      ws.once('error', reject);
    });
    ws.terminate();
    expect(JSON.parse(hello)).toMatchObject({ type: 'hello' });
  });

  it('catches a route added without a table entry', async () => {
    m = await startManager(
      {},
      {
        api: {
          plugins: [
            (app) => {
              app.get('/api/undocumented', async () => ({}));
              app.post('/api/tasks/:id/poke', async () => ({}));
            },
          ],
        },
      },
    );
    expect(undocumentedRoutes(m.api)).toEqual([
      { method: 'GET', url: '/api/undocumented' },
      { method: 'POST', url: '/api/tasks/:id/poke' },
    ]);
  });

  it('what the routes really answer matches the document, errors included', async () => {
    m = await startManager({ workers: [] });
    const w = await spawnWorker('echo');
    procs.push(w);
    await m.manager.registerWorker({ endpoint: w.endpoint });
    const check = responseChecker(buildOpenApiDocument() as Doc);

    const submitted = await call(m, 'POST', '/api/tasks', { capability: 'echo', payload: { hi: 1 } });
    expect(submitted.status).toBe(201);
    check('submitTask', 201, submitted.json);
    const id = (submitted.json as { task: { id: string } }).task.id;
    const art = { name: 'a.bin', contentType: 'application/octet-stream', base64: 'AAEC' };
    const waited = await call(m, 'POST', '/api/tasks?wait=true&timeoutMs=10000', {
      capability: 'echo',
      payload: { artifact: art },
    });
    expect(waited.status).toBe(200);
    expect((waited.json as { task: { state: string } }).task.state).toBe('succeeded');
    check('submitTask', 200, waited.json);
    const cases: [string, string, string, unknown?][] = [
      ['getTask', 'GET', `/api/tasks/${id}`],
      ['waitTask', 'GET', `/api/tasks/${id}/wait?timeoutMs=5000`],
      ['listTasks', 'GET', '/api/tasks?limit=10'],
      ['listWorkers', 'GET', '/api/workers'],
      ['status', 'GET', '/api/status'],
      ['health', 'GET', '/health'],
      ['scaling', 'GET', '/api/scaling'],
      ['alerts', 'GET', '/api/alerts'],
      ['registerWorker', 'POST', '/api/workers', { endpoint: 'ws://127.0.0.1:1/ws' }],
      ['getTask', 'GET', '/api/tasks/no-such-task'],
      ['submitTask', 'POST', '/api/tasks', { capability: 'echo', priority: 'high' }],
      ['listTasks', 'GET', '/api/tasks?limit=10001'],
      ['cancelTask', 'POST', `/api/tasks/${id}/cancel`],
    ];
    const statuses: number[] = [];
    for (const [op, method, path, body] of cases) {
      const r = await call(m, method, path, body);
      statuses.push(r.status);
      check(op, r.status, r.json);
    }
    // The error cases are errors (so the Error schema was exercised), the rest succeeded.
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200, 200, 200, 202, 404, 400, 400, 409]);
  });

  it('the document and the routes share their schemas: the limits it states are the limits enforced', async () => {
    m = await startManager();
    const doc = (await (await fetch(`${m.url}/api/openapi.json`)).json()) as {
      paths: Record<string, { get: { parameters: { name: string; schema: { maximum: number } }[] } }>;
    };
    const limit = doc.paths['/api/tasks']!.get.parameters.find((p) => p.name === 'limit')!;
    expect((await call(m, 'GET', `/api/tasks?limit=${limit.schema.maximum}`)).status).toBe(200);
    const over = await call(m, 'GET', `/api/tasks?limit=${limit.schema.maximum + 1}`);
    expect(over.status).toBe(400);
    expect((over.json as { error: { code: string } }).error.code).toBe('invalid_task');
  });

  it('is behind the token like the rest of /api', async () => {
    m = await startManager({ token: 'op-token-123' });
    expect((await fetch(`${m.url}/api/openapi.json`)).status).toBe(401);
    const ok = await fetch(`${m.url}/api/openapi.json`, {
      headers: { authorization: 'Bearer op-token-123' },
    });
    expect(ok.status).toBe(200);
  });

  it("the capability catalog's payload schemas go in as components and shape the submit body", async () => {
    const Payload = z.object({ code: z.string().min(1), timeout: z.number().positive().optional() });
    const capabilities: CapabilitySchemaDoc[] = [
      {
        name: 'python-execution',
        description: 'Runs Python.',
        payloadSchema: z.toJSONSchema(Payload),
        resultSchema: z.toJSONSchema(z.object({ stdout: z.string() })),
      },
      { name: 'echo', payloadSchema: {} },
    ];
    let current = capabilities.slice(0, 1);
    m = await startManager({}, { api: { openapi: { capabilities: () => current } } });
    const first = (await (await fetch(`${m.url}/api/openapi.json`)).json()) as Doc;
    await expectValidOpenApi(first);
    expect(first.components.schemas['payload.python-execution']).toMatchObject({
      type: 'object',
      required: ['code'],
    });
    expect(first.components.schemas['result.python-execution']).toBeDefined();
    // A body the catalog's schema refuses fails the document's submit body, one it accepts passes.
    const ajv = new Ajv2020({ strict: false });
    ajv.addSchema({ ...first, $id: 'https://fleet.local/openapi.json' });
    const body = first.paths['/api/tasks']!.post!.requestBody!.content['application/json']!.schema;
    const validate = ajv.compile({
      $ref: 'https://fleet.local/openapi.json#/paths/~1api~1tasks/post/requestBody/content/application~1json/schema',
    });
    expect(body).toHaveProperty('allOf');
    expect(validate({ capability: 'python-execution', payload: { code: 'print(1)' } })).toBe(true);
    expect(validate({ capability: 'python-execution', payload: { code: '' } })).toBe(false);
    expect(validate({ capability: 'python-execution', payload: { timeout: 1 } })).toBe(false);
    expect(validate({ capability: 'nope', payload: {} })).toBe(false);
    // Workers come and go: the next request sees the catalog as it is then.
    current = capabilities;
    const second = (await (await fetch(`${m.url}/api/openapi.json`)).json()) as Doc;
    expect(Object.keys(second.components.schemas).filter((k) => k.startsWith('payload.'))).toEqual([
      'payload.python-execution',
      'payload.echo',
    ]);
    await expectValidOpenApi(second);
  });
});
