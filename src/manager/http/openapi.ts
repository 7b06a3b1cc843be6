/**
 * `GET /api/openapi.json`: an OpenAPI 3.1 document generated from the route table and zod schemas in
 * api-schemas.ts (the ones the routes parse with), through zod's own `z.toJSONSchema`. OpenAPI 3.1 schemas are
 * JSON Schema 2020-12, zod's default target, so the generated schemas go in as they are.
 *
 * Capability payloads: the task body's `payload` is open (`{}`) in the route's schema because what it must be
 * depends on the capability. A caller that knows the fleet's capabilities (the manager's capability catalog)
 * passes them as `capabilities`; each one's payload (and result) JSON Schema then becomes a component, and the
 * submit body becomes a `oneOf` over `{capability: <name>, payload: <its schema>}`.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { API_ROUTES, ErrorResponse, PublicTask, WorkerView, type ApiRoute } from './api-schemas.js';

type JsonSchema = Record<string, unknown>;

/** One capability as the catalog describes it: JSON Schemas the catalog generated from its handler's zod. */
export interface CapabilitySchemaDoc {
  name: string;
  description?: string;
  payloadSchema: JsonSchema;
  resultSchema?: JsonSchema;
}

export interface OpenApiOptions {
  /** The manager's version, for `info.version`. */
  version?: string;
  /**
   * The fleet's capabilities now (the hook for the manager's capability catalog); read on every request, so
   * workers coming and going show.
   */
  capabilities?: () => readonly CapabilitySchemaDoc[];
}

const REF = (id: string) => `#/components/schemas/${id}`;
/** Components shared between routes, named in the document. */
const SHARED = { Task: PublicTask, Worker: WorkerView, Error: ErrorResponse } as const;

/** Component keys allow letters, digits and `.-_` only. */
export function componentName(raw: string): string {
  return raw.replace(/[^A-Za-z0-9._-]/g, '_');
}

// fastify writes a literal colon as `::` (POST /api/tasks::batch is /api/tasks:batch).
export const openApiPath = (url: string): string =>
  url
    .split('::')
    .map((part) => part.replace(/:([A-Za-z0-9_]+)/g, '{$1}'))
    .join(':');

function stripMeta(schema: JsonSchema): JsonSchema {
  const { $schema: _s, $id: _i, ...rest } = schema;
  return rest;
}

/** Converts every schema in `named` through one zod registry, so shared parts become `$ref`s. */
function convert(named: Map<string, z.ZodType>, io: 'input' | 'output'): Record<string, JsonSchema> {
  const registry = z.registry<{ id: string }>();
  for (const [id, schema] of named) registry.add(schema, { id });
  const out = z.toJSONSchema(registry, { target: 'draft-2020-12', io, uri: REF, unrepresentable: 'any' });
  return Object.fromEntries(
    Object.entries(out.schemas).map(([id, s]) => [id, stripMeta(s as JsonSchema)] as const),
  );
}

function parameters(route: ApiRoute): JsonSchema[] {
  const out: JsonSchema[] = [];
  for (const [where, object] of [
    ['path', route.params],
    ['query', route.query],
  ] as const) {
    if (!object) continue;
    for (const [name, field] of Object.entries(object.shape)) {
      const schema = stripMeta(z.toJSONSchema(field, { io: 'input', unrepresentable: 'any' }));
      const { description, ...rest } = schema;
      out.push({
        name,
        in: where,
        required: where === 'path' || !field.safeParse(undefined).success,
        ...(typeof description === 'string' ? { description } : {}),
        schema: rest,
      });
    }
  }
  return out;
}

function submitBodyWithCatalog(capabilities: readonly CapabilitySchemaDoc[]): JsonSchema {
  return {
    allOf: [
      { $ref: REF('submitTask.body') },
      {
        oneOf: capabilities.map((c) => ({
          type: 'object',
          ...(c.description ? { description: c.description } : {}),
          properties: {
            capability: { const: c.name },
            payload: { $ref: REF(`payload.${componentName(c.name)}`) },
          },
          required: ['capability'],
        })),
      },
    ],
  };
}

export function buildOpenApiDocument(
  options: { version?: string; capabilities?: readonly CapabilitySchemaDoc[] } = {},
): JsonSchema {
  const requests = new Map<string, z.ZodType>();
  const responses = new Map<string, z.ZodType>(Object.entries(SHARED));
  for (const r of API_ROUTES) {
    if (r.body) requests.set(`${r.operationId}.body`, r.body);
    for (const [status, res] of Object.entries(r.responses)) {
      if ('schema' in res) responses.set(`${r.operationId}.${status}`, res.schema);
    }
  }
  const schemas: Record<string, JsonSchema> = {
    ...convert(requests, 'input'),
    ...convert(responses, 'output'),
  };

  const capabilities = options.capabilities ?? [];
  for (const c of capabilities) {
    schemas[`payload.${componentName(c.name)}`] = stripMeta(c.payloadSchema);
    if (c.resultSchema) schemas[`result.${componentName(c.name)}`] = stripMeta(c.resultSchema);
  }

  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of API_ROUTES) {
    const responsesDoc: Record<string, unknown> = {};
    for (const [status, res] of Object.entries(r.responses)) {
      responsesDoc[status] =
        'schema' in res
          ? {
              description: res.description,
              content: { 'application/json': { schema: { $ref: REF(`${r.operationId}.${status}`) } } },
            }
          : {
              description: res.description,
              content: {
                [res.mediaType]: { schema: res.binary ? {} : { type: 'string' } },
              },
            };
    }
    responsesDoc.default = {
      description: 'A typed Fleet error (`error.code`; see docs/errors.md), with its HTTP status.',
      content: { 'application/json': { schema: { $ref: REF('Error') } } },
    };
    const params = parameters(r);
    const body =
      r.body &&
      (r.operationId === 'submitTask' && capabilities.length > 0
        ? submitBodyWithCatalog(capabilities)
        : { $ref: REF(`${r.operationId}.body`) });
    const operation = {
      operationId: r.operationId,
      summary: r.summary,
      tags: r.tags,
      ...(params.length ? { parameters: params } : {}),
      ...(body ? { requestBody: { required: true, content: { 'application/json': { schema: body } } } } : {}),
      responses: responsesDoc,
      ...(r.access === 'none' ? { security: [] } : {}),
      'x-fleet-access': r.access,
      ...(r.upgrade ? { 'x-fleet-websocket': true } : {}),
    };
    (paths[openApiPath(r.url)] ??= {})[r.method.toLowerCase()] = operation;
  }

  return {
    openapi: '3.1.0',
    info: {
      title: 'Fleet manager API',
      version: options.version ?? '0.1.0',
      description:
        'Tasks, workers and status of a Fleet manager. Errors are `{ error: { code, message, retryable, details? } }` ' +
        "with the code's HTTP status; clients match on `code`. With `manager.token` set, `/api` needs " +
        '`Authorization: Bearer <token>`; `manager.read_token` is accepted for reads (`x-fleet-access: read`).',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    security: [{ bearer: [] }],
    tags: [
      { name: 'tasks', description: 'Submit, watch, cancel and retry tasks; fetch their artifacts.' },
      { name: 'workers', description: 'Workers and their lifecycle.' },
      { name: 'events', description: 'The live event stream.' },
      { name: 'operations', description: 'Health, metrics, status, scaling and alerts.' },
    ],
    paths,
    components: {
      schemas,
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    },
  };
}

/** A route as fastify registered it. */
export interface RegisteredRoute {
  method: string;
  url: string;
}

/**
 * Routes that are not the public API and so not in the document: the dashboard's page, assets and the JSON it
 * reads are its own (they follow the UI, not a contract).
 */
export const UNDOCUMENTED_PREFIXES: readonly string[] = ['/dashboard'];

const registered = new WeakMap<FastifyInstance, RegisteredRoute[]>();

/** Every route registered on `app` after registerOpenApiRoute (HEAD twins left out), for the drift test. */
export function registeredRoutes(app: FastifyInstance): readonly RegisteredRoute[] {
  return registered.get(app) ?? [];
}

/** Routes the server registered that neither the route table nor UNDOCUMENTED_PREFIXES covers. */
export function undocumentedRoutes(app: FastifyInstance): RegisteredRoute[] {
  const documented = new Set(API_ROUTES.map((r) => `${r.method} ${r.url}`));
  return registeredRoutes(app).filter(
    (r) =>
      !documented.has(`${r.method} ${r.url}`) &&
      !UNDOCUMENTED_PREFIXES.some((p) => r.url === p || r.url.startsWith(`${p}/`)),
  );
}

/**
 * Registers `GET /api/openapi.json` behind `preHandler` (the API's read guard), and an onRoute hook that records
 * every route registered after it, so a test can hold the route table to what the server really serves. Call it
 * before the other routes. The document is rebuilt only when the capabilities change.
 */
export function registerOpenApiRoute(
  app: FastifyInstance,
  preHandler: (req: FastifyRequest) => Promise<void>,
  options: OpenApiOptions = {},
): void {
  const routes: RegisteredRoute[] = [];
  registered.set(app, routes);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      if (method !== 'HEAD') routes.push({ method, url: route.url });
    }
  });
  let cached: { key: string; doc: JsonSchema } | undefined;
  app.get('/api/openapi.json', { preHandler }, async () => {
    const capabilities = options.capabilities?.() ?? [];
    const key = JSON.stringify(capabilities);
    if (cached?.key !== key) {
      cached = {
        key,
        doc: buildOpenApiDocument({ capabilities, ...(options.version ? { version: options.version } : {}) }),
      };
    }
    return cached.doc;
  });
}
