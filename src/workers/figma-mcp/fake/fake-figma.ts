/**
 * A loopback stand-in for api.figma.com: a real HTTP server answering the REST endpoints the client uses,
 * with the fixtures in `fixtures/`. It behaves like Figma where behaviour matters to a client: the token is
 * checked, `ids`/`depth`/`geometry` have Figma's semantics (file depth counts from the document, node depth
 * from each node; unknown ids are `null`), both error body shapes, render URLs that serve real PNG/JPEG/SVG/
 * PDF bytes, and switches (`setMode`) for 429 + `Retry-After` + `X-Figma-*` headers, 403, 404, 400 "Request
 * too large", 500, dropped connections and slow answers. It counts every request so tests can prove cache
 * hits and single-flight.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Node, SubcanvasNode } from '@figma/rest-api-spec';
import { TINY_JPEG, solidPdf, solidPng, solidSvg, type Rgba8 } from './image-bytes.js';
import { defaultFixtures, type FakeFile, type FakeTeam } from './fixtures/index.js';

export type FakeMode =
  | { kind: 'normal' }
  | { kind: 'rate_limit'; retryAfter: number; planTier?: string; limitType?: 'low' | 'high' }
  | { kind: 'forbidden' }
  | { kind: 'not_found' }
  | { kind: 'server_error' }
  | { kind: 'network_error' }
  | { kind: 'too_large'; maxIds: number }
  | { kind: 'slow'; delayMs: number }
  /** Answers 302 to `location` (to prove the client never carries the token along). */
  | { kind: 'redirect'; location: string };

export interface FakeModeOptions {
  /** Apply to this many matching requests, then return to normal. @default unlimited */
  times?: number;
  /** Only requests whose path contains this string. */
  match?: string;
}

export interface FakeRequestLogEntry {
  at: number;
  method: string;
  path: string;
  query: string;
  endpoint: string;
  status: number;
  /** How the request authenticated (the scheme only, never the secret). */
  auth: 'bearer' | 'x-figma-token' | 'none';
}

export interface FakeFigmaOptions {
  /** The personal access token, accepted only in `X-Figma-Token`. */
  token?: string;
  /** The OAuth access token, accepted only as `Authorization: Bearer`. */
  oauthToken?: string;
  host?: string;
  port?: number;
  /** Plays an Enterprise plan: the Variables API answers instead of 403. */
  enterprise?: boolean;
  files?: FakeFile[];
  team?: FakeTeam;
  /** Added to every API answer (ms), to look like a network. */
  latencyMs?: number;
}

export interface FakeRequests {
  readonly total: number;
  readonly log: readonly FakeRequestLogEntry[];
  count(endpoint?: string): number;
  reset(): void;
}

export interface FakeFigma {
  url: string;
  port: number;
  token: string;
  oauthToken: string;
  teamId: string;
  requests: FakeRequests;
  setMode(mode: FakeMode, options?: FakeModeOptions): void;
  /** Simulates an edit: the file gets a new version. */
  bumpVersion(fileKey: string): string;
  close(): Promise<void>;
}

export const FAKE_TOKEN = 'figd_fake-token-for-loopback-tests';
export const FAKE_OAUTH_TOKEN = 'figu_fake-oauth-token-for-loopback-tests';

type Json = Record<string, unknown>;

export async function startFakeFigma(options: FakeFigmaOptions = {}): Promise<FakeFigma> {
  const token = options.token ?? FAKE_TOKEN;
  const oauthToken = options.oauthToken ?? FAKE_OAUTH_TOKEN;
  /** Like Figma: a personal token only in X-Figma-Token, an OAuth token only as a bearer token. */
  const authorized = (req: IncomingMessage): boolean => {
    const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
    if (bearer !== undefined) return bearer === oauthToken;
    return req.headers['x-figma-token'] === token;
  };
  const fixtures =
    options.files && options.team ? { files: options.files, team: options.team } : defaultFixtures();
  const files = new Map(fixtures.files.map((f) => [f.key, f]));
  const team = fixtures.team;
  const index = new Map<string, Map<string, Node>>();
  for (const f of files.values()) index.set(f.key, indexNodes(f.file.document));
  const log: FakeRequestLogEntry[] = [];
  let mode: FakeMode = { kind: 'normal' };
  let modeLeft = Number.POSITIVE_INFINITY;
  let modeMatch: string | undefined;
  let origin = '';

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  };
  const sendBytes = (res: ServerResponse, contentType: string, data: Buffer) => {
    res.writeHead(200, {
      'content-type': contentType,
      'content-length': data.length,
      'cache-control': 'private',
    });
    res.end(data);
  };
  /** Files/images endpoints answer `{status, err}`; the newer ones `{error: true, status, message}`. */
  const fail = (res: ServerResponse, status: number, message: string, shape: 'err' | 'message') =>
    send(res, status, shape === 'err' ? { status, err: message } : { error: true, status, message });

  const handle = async (req: IncomingMessage, res: ServerResponse, url: URL, entry: FakeRequestLogEntry) => {
    const path = url.pathname;
    const q = url.searchParams;
    let m: RegExpExecArray | null;

    // Pre-signed asset URLs: no token, like Figma's S3 links.
    if ((m = /^\/render\/([^/]+)\/([^/]+)\.(png|jpg|svg|pdf)$/.exec(path))) {
      entry.endpoint = 'render';
      const node = index.get(m[1]!)?.get(decodeURIComponent(m[2]!));
      if (!node) return fail(res, 404, 'Not found', 'err');
      const box =
        'absoluteBoundingBox' in node && node.absoluteBoundingBox
          ? node.absoluteBoundingBox
          : { width: 1, height: 1 };
      const scale = Math.min(4, Math.max(0.01, Number(q.get('scale') ?? '1') || 1));
      const color = firstSolid(node);
      const fmt = m[3]!;
      if (fmt === 'png')
        return sendBytes(res, 'image/png', solidPng(box.width * scale, box.height * scale, color));
      if (fmt === 'jpg') return sendBytes(res, 'image/jpeg', TINY_JPEG);
      if (fmt === 'svg') {
        const paths = 'fillGeometry' in node && node.fillGeometry ? node.fillGeometry.map((g) => g.path) : [];
        return sendBytes(res, 'image/svg+xml', solidSvg(box.width, box.height, color, paths));
      }
      return sendBytes(res, 'application/pdf', solidPdf(box.width, box.height, color));
    }
    if ((m = /^\/fills\/([^/]+)\/([^/]+)\.png$/.exec(path))) {
      entry.endpoint = 'fill';
      const hex = files.get(m[1]!)?.imageFills[m[2]!];
      if (!hex) return fail(res, 404, 'Not found', 'err');
      return sendBytes(res, 'image/png', solidPng(64, 48, hexToRgba8(hex)));
    }

    entry.endpoint = endpointName(path);
    if (!authorized(req)) return fail(res, 403, 'Invalid token', 'err');
    if (req.method !== 'GET') return fail(res, 405, 'Method not allowed', 'err');

    if (mode.kind !== 'normal' && modeLeft > 0 && (!modeMatch || path.includes(modeMatch))) {
      const active = mode;
      const ids = (q.get('ids') ?? '').split(',').filter(Boolean);
      const applies = active.kind !== 'too_large' || ids.length > active.maxIds;
      if (applies) {
        modeLeft--;
        switch (active.kind) {
          case 'rate_limit':
            return send(
              res,
              429,
              { status: 429, err: 'Rate limit exceeded' },
              {
                'retry-after': String(active.retryAfter),
                'x-figma-plan-tier': active.planTier ?? 'pro',
                'x-figma-rate-limit-type': active.limitType ?? 'low',
                'x-figma-upgrade-link': 'https://www.figma.com/pricing',
              },
            );
          case 'forbidden':
            return fail(res, 403, 'Forbidden', 'err');
          case 'not_found':
            return fail(res, 404, 'Not found', 'err');
          case 'server_error':
            return fail(res, 500, 'Internal server error', 'err');
          case 'network_error':
            req.socket.destroy();
            return;
          case 'too_large':
            return fail(res, 400, 'Request too large', 'err');
          case 'redirect':
            res.writeHead(302, { location: active.location, 'content-length': 0 });
            res.end();
            return;
          case 'slow':
            await delay(active.delayMs, res);
            if (res.destroyed || res.writableEnded) return;
            break;
        }
      }
      if (modeLeft <= 0) mode = { kind: 'normal' };
    }
    if (options.latencyMs) await delay(options.latencyMs, res);

    if ((m = /^\/v1\/teams\/([^/]+)\/projects$/.exec(path))) {
      if (m[1] !== team.id) return fail(res, 404, 'Not found', 'err');
      return send(res, 200, {
        name: team.name,
        projects: team.projects.map((p) => ({ id: p.id, name: p.name })),
      });
    }
    if ((m = /^\/v1\/projects\/([^/]+)\/files$/.exec(path))) {
      const project = team.projects.find((p) => p.id === m![1]);
      if (!project) return fail(res, 404, 'Not found', 'err');
      return send(res, 200, {
        name: project.name,
        files: project.files.flatMap((k) => {
          const f = files.get(k);
          return f
            ? [
                {
                  key: f.key,
                  name: f.file.name,
                  thumbnail_url: f.file.thumbnailUrl,
                  last_modified: f.file.lastModified,
                },
              ]
            : [];
        }),
      });
    }
    if ((m = /^\/v1\/images\/([^/]+)$/.exec(path))) {
      const f = files.get(m[1]!);
      if (!f) return fail(res, 404, 'Not found', 'err');
      const ids = parseIds(q.get('ids'));
      if (!ids) return fail(res, 400, 'Missing or invalid ids', 'err');
      const format = q.get('format') ?? 'png';
      if (!['png', 'jpg', 'svg', 'pdf'].includes(format))
        return fail(res, 400, `Invalid format ${format}`, 'err');
      const scale = Number(q.get('scale') ?? '1');
      if (!(scale >= 0.01 && scale <= 4))
        return fail(res, 400, 'Invalid scale, must be between 0.01 and 4', 'err');
      const nodes = index.get(f.key)!;
      const images: Record<string, string | null> = {};
      for (const id of ids) {
        const node = nodes.get(id);
        images[id] =
          node && node.visible !== false && node.type !== 'DOCUMENT' && node.type !== 'CANVAS'
            ? `${origin}/render/${f.key}/${encodeURIComponent(id)}.${format}?scale=${scale}&sig=fake`
            : null;
      }
      return send(res, 200, { err: null, images, status: 200 });
    }
    if ((m = /^\/v1\/files\/([^/]+)(\/.*)?$/.exec(path))) {
      const f = files.get(m[1]!);
      const rest = m[2] ?? '';
      const shape = rest === '' || rest === '/nodes' ? 'err' : 'message';
      if (!f) return fail(res, 404, 'Not found', shape);
      switch (rest) {
        case '':
          return serveFile(res, f, q);
        case '/nodes':
          return serveNodes(res, f, q);
        case '/meta':
          return send(res, 200, {
            file: {
              name: f.file.name,
              folder_name: team.projects.find((p) => p.id === f.projectId)?.name,
              last_touched_at: f.lastTouchedAt,
              creator: { id: '1', handle: 'Dana', img_url: '' },
              editorType: 'figma',
              role: f.file.role,
              link_access: 'view',
              url: `https://www.figma.com/design/${f.key}`,
              thumbnail_url: f.file.thumbnailUrl,
              version: f.file.version,
            },
          });
        case '/images':
          return send(res, 200, {
            error: false,
            status: 200,
            meta: {
              images: Object.fromEntries(
                Object.keys(f.imageFills).map((ref) => [ref, `${origin}/fills/${f.key}/${ref}.png?sig=fake`]),
              ),
            },
          });
        case '/components':
          return send(res, 200, { status: 200, error: false, meta: { components: f.publishedComponents } });
        case '/styles':
          return send(res, 200, { status: 200, error: false, meta: { styles: f.publishedStyles } });
        case '/variables/local':
          if (!options.enterprise || !f.variables)
            return fail(
              res,
              403,
              'Limited by Figma plan: the Variables API needs an Enterprise plan',
              'message',
            );
          return send(res, 200, { status: 200, error: false, meta: f.variables });
        default:
          return fail(res, 404, 'Not found', 'err');
      }
    }
    return fail(res, 404, 'Not found', 'err');
  };

  function serveFile(res: ServerResponse, f: FakeFile, q: URLSearchParams) {
    const depth = parseDepth(q.get('depth'));
    if (depth === null) return fail(res, 400, 'depth must be a positive integer', 'err');
    const idsParam = q.get('ids');
    const ids = idsParam ? parseIds(idsParam) : undefined;
    if (idsParam && !ids) return fail(res, 400, 'Invalid ids', 'err');
    const geometry = q.get('geometry') === 'paths';
    let doc: Json = f.file.document;
    if (ids) doc = prunePaths(doc, new Set(ids)) ?? { ...doc, children: [] };
    doc = cut(doc, depth, geometry);
    return send(res, 200, { ...f.file, document: doc });
  }

  function serveNodes(res: ServerResponse, f: FakeFile, q: URLSearchParams) {
    const ids = parseIds(q.get('ids'));
    if (!ids) return fail(res, 400, 'Missing or invalid ids', 'err');
    const depth = parseDepth(q.get('depth'));
    if (depth === null) return fail(res, 400, 'depth must be a positive integer', 'err');
    const geometry = q.get('geometry') === 'paths';
    const nodes: Record<string, unknown> = {};
    const idx = index.get(f.key)!;
    for (const id of ids) {
      const node = idx.get(id);
      if (!node) {
        nodes[id] = null;
        continue;
      }
      const used = usedRefs(node);
      nodes[id] = {
        document: cut(node, depth, geometry),
        components: pick(f.file.components, used.components),
        componentSets: pick(
          f.file.componentSets,
          new Set(
            [...used.components]
              .map((c) => f.file.components[c]?.componentSetId)
              .filter((s): s is string => !!s),
          ),
        ),
        schemaVersion: 0,
        styles: pick(f.file.styles, used.styles),
      };
    }
    const { document: _d, components: _c, componentSets: _s, styles: _st, ...head } = f.file;
    return send(res, 200, { ...head, nodes });
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake');
    const entry: FakeRequestLogEntry = {
      at: Date.now(),
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.search,
      endpoint: 'unknown',
      status: 0,
      auth: /^Bearer /i.test(req.headers.authorization ?? '')
        ? 'bearer'
        : req.headers['x-figma-token'] !== undefined
          ? 'x-figma-token'
          : 'none',
    };
    log.push(entry);
    if (log.length > 10_000) log.splice(0, log.length - 10_000);
    res.on('finish', () => (entry.status = res.statusCode));
    handle(req, res, url, entry).catch((err: unknown) => {
      if (!res.headersSent) fail(res, 500, `fake: ${(err as Error).message}`, 'err');
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  origin = `http://${options.host ?? '127.0.0.1'}:${port}`;

  const requests: FakeRequests = {
    get total() {
      return log.filter((e) => e.endpoint !== 'render' && e.endpoint !== 'fill').length;
    },
    get log() {
      return log;
    },
    count(endpoint?: string) {
      return endpoint ? log.filter((e) => e.endpoint === endpoint).length : this.total;
    },
    reset() {
      log.length = 0;
    },
  };

  return {
    url: origin,
    port,
    token,
    oauthToken,
    teamId: team.id,
    requests,
    setMode(next, opts = {}) {
      mode = next;
      modeLeft = opts.times ?? Number.POSITIVE_INFINITY;
      modeMatch = opts.match;
    },
    bumpVersion(fileKey) {
      const f = files.get(fileKey);
      if (!f) throw new Error(`fake: no file ${fileKey}`);
      f.file.version = String(Number(f.file.version) + 1);
      f.lastTouchedAt = new Date().toISOString();
      return f.file.version;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function endpointName(path: string): string {
  if (/^\/v1\/teams\/[^/]+\/projects$/.test(path)) return 'team_projects';
  if (/^\/v1\/projects\/[^/]+\/files$/.test(path)) return 'project_files';
  if (/^\/v1\/images\//.test(path)) return 'images';
  const m = /^\/v1\/files\/[^/]+(\/.*)?$/.exec(path);
  if (!m) return 'unknown';
  const rest = m[1] ?? '';
  return (
    {
      '': 'file',
      '/nodes': 'file_nodes',
      '/meta': 'file_meta',
      '/images': 'image_fills',
      '/components': 'file_components',
      '/styles': 'file_styles',
      '/variables/local': 'local_variables',
    }[rest] ?? 'unknown'
  );
}

function indexNodes(root: Node): Map<string, Node> {
  const out = new Map<string, Node>();
  const walk = (n: Node) => {
    out.set(n.id, n);
    if ('children' in n && Array.isArray(n.children)) for (const c of n.children as Node[]) walk(c);
  };
  walk(root);
  return out;
}

function parseIds(raw: string | null): string[] | undefined {
  if (!raw) return undefined;
  const ids = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (ids.length === 0 || ids.some((id) => id.length > 200)) return undefined;
  return ids;
}

/** `undefined` = no limit; `null` = invalid. */
function parseDepth(raw: string | null): number | undefined | null {
  if (raw === null) return undefined;
  const n = Number(raw);
  return Number.isInteger(n) && n >= 1 ? n : null;
}

/** A copy down to `depth` levels below `node` (nodes at the boundary lose `children`), without geometry unless asked. */
function cut(node: Json, depth: number | undefined, geometry: boolean): Json {
  const { children, fillGeometry, strokeGeometry, ...rest } = node as Json & { children?: Json[] };
  const out: Json = { ...rest };
  if (geometry) {
    if (fillGeometry !== undefined) out.fillGeometry = fillGeometry;
    if (strokeGeometry !== undefined) out.strokeGeometry = strokeGeometry;
  }
  if (Array.isArray(children) && (depth === undefined || depth > 0)) {
    out.children = children.map((c) => cut(c, depth === undefined ? undefined : depth - 1, geometry));
  }
  return out;
}

/** The document reduced to the wanted nodes (whole subtrees) and the paths that lead to them. */
function prunePaths(node: Json, wanted: Set<string>): Json | undefined {
  if (wanted.has(node.id as string)) return node;
  const children = node.children as Json[] | undefined;
  if (!children) return undefined;
  const kept = children.map((c) => prunePaths(c, wanted)).filter((c): c is Json => c !== undefined);
  return kept.length ? { ...node, children: kept } : undefined;
}

function usedRefs(root: Node): { components: Set<string>; styles: Set<string> } {
  const components = new Set<string>();
  const styles = new Set<string>();
  const walk = (n: Node) => {
    if (n.type === 'INSTANCE') components.add(n.componentId);
    if ('styles' in n && n.styles) for (const s of Object.values(n.styles)) styles.add(s);
    if ('children' in n && Array.isArray(n.children)) for (const c of n.children as SubcanvasNode[]) walk(c);
  };
  walk(root);
  return { components, styles };
}

function pick<T>(record: Record<string, T>, keys: Set<string>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).filter(([k]) => keys.has(k)));
}

function firstSolid(node: Node): Rgba8 {
  const fills = 'fills' in node && Array.isArray(node.fills) ? node.fills : [];
  for (const p of fills) {
    if (p.type === 'SOLID')
      return {
        r: Math.round(p.color.r * 255),
        g: Math.round(p.color.g * 255),
        b: Math.round(p.color.b * 255),
        a: Math.round((p.opacity ?? 1) * p.color.a * 255),
      };
  }
  return { r: 204, g: 204, b: 204, a: 255 };
}

function hexToRgba8(hex: string): Rgba8 {
  const h = hex.replace('#', '');
  return {
    r: parseInt(h.slice(0, 2), 16),
    g: parseInt(h.slice(2, 4), 16),
    b: parseInt(h.slice(4, 6), 16),
    a: 255,
  };
}

/** Waits, but stops early when the client goes away (so a cancelled call frees the fake at once). */
function delay(ms: number, res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    t.unref();
    res.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}
