/**
 * The capability catalog (issue 18): what the fleet offers now, as the workers describe it in their `hello`,
 * and the payload check every submission passes before it is queued.
 *
 * The manager has JSON Schema only (the zod schemas live in the workers), so payloads are checked with ajv
 * (draft 2020-12, what `z.toJSONSchema` writes). A worker's schemas cross a trust boundary: each is bounded in
 * size and shape before ajv sees it, must not reach outside itself (`$ref` to anything but its own
 * definitions fails to compile: ajv loads nothing), and must compile; a schema that fails any of these is
 * refused with `capability_refused` and the worker is not routed that capability. Identical schemas (every
 * replica of a worker type) compile once.
 *
 * Entries are per capability. The first live worker's description wins; the last description seen is kept
 * after its workers leave, so tasks queued for a restarting worker type are still checked.
 *
 * Fleet-wide (distributed mode): a manager connects to some workers only. The descriptions of the others
 * come from the shared worker directory, where every manager publishes its workers' admitted descriptions
 * (`published`), and are merged in by `syncRemote` after every discovery round. They pass the same checks as
 * a hello (the directory is shared state, not trusted), and a worker connected here always wins over its
 * record.
 */
import { createHash } from 'node:crypto';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import { FleetError } from '../../protocol/errors.js';
import { checkJsonLimits, type JsonLimits } from '../../protocol/json-limits.js';
import type { CapabilityDescriptor } from '../../protocol/messages.js';
import { closest } from '../../config/strict-keys.js';
import {
  boundedRegExp,
  checkPattern,
  PATTERN_WORK_BUDGET,
  PatternBudget,
  type PatternVerdict,
} from './regex-safety.js';

/** Bounds on one schema from a worker; generous for generated schemas (the largest of ours is ~12 KiB). */
export const SCHEMA_LIMITS: JsonLimits = {
  maxBytes: 64 * 1024,
  maxDepth: 64,
  maxKeys: 20_000,
  maxStringLength: 8192,
};
/** All the schemas of one hello together: compiling is synchronous, so this bounds the event loop's stall. */
export const HELLO_SCHEMA_BUDGET_BYTES = 1024 * 1024;
/** How many distinct schemas the manager keeps compiled; a worker cycling schemas cannot grow it further. */
const MAX_COMPILED = 500;
/** Analysis steps for all the patterns of one hello (a few times one pattern's own budget). */
const HELLO_PATTERN_WORK_BUDGET = 4 * PATTERN_WORK_BUDGET;
/** Verdicts on patterns already analysed, shared by every catalog in the process. */
const PATTERN_VERDICTS = new Map<string, PatternVerdict>();

export interface CatalogEntry {
  capability: string;
  description: string;
  payloadSchema?: Record<string, unknown>;
  resultSchema?: Record<string, unknown>;
  idempotent: boolean;
  readOnly: boolean;
  artifactTypes: string[];
  workerTypes: string[];
  /** Connected workers offering it now. */
  workers: number;
}

export interface CatalogChange {
  capabilities: string[];
  added: string[];
  removed: string[];
  /** Capabilities whose description changed (a new worker version). */
  changed: string[];
}

interface Admitted {
  descriptor: CapabilityDescriptor;
  validate: ValidateFunction;
  key: string;
}

interface WorkerEntry {
  workerType: string;
  capabilities: string[];
  described: Map<string, Admitted>;
  live: boolean;
  /** Known from the directory (another manager holds it), not from a connection here. */
  remote: boolean;
  /** What was published for the worker: its descriptions as taken in, and their hash. */
  published: { describes: CapabilityDescriptor[]; key: string };
  /** A remote worker's record as last taken in (type, capabilities, descriptions), to skip an unchanged one. */
  offer?: string;
}

/** A worker as another manager published it in the shared directory. */
export interface RemoteWorker {
  workerId: string;
  workerType: string;
  capabilities: readonly string[];
  status: string;
  describes?: readonly CapabilityDescriptor[];
  /** The hash of `describes` when the directory already checked it (saves hashing every record every round). */
  describesKey?: string;
}

export interface Refusal {
  capability: string;
  error: FleetError;
}

export class CapabilityCatalog {
  private readonly ajv = new Ajv2020({
    strict: false,
    allErrors: false,
    // Looser than zod, never stricter: a format zod checks by a pattern is checked there anyway.
    validateFormats: false,
    // Each schema is compiled alone: two workers' identical `$id`s must not collide in a shared registry.
    addUsedSchema: false,
    logger: false,
    // A pattern not anchored at the start is a search: run only on bounded strings (regex-safety.ts).
    code: { regExp: boundedRegExp },
  });
  private readonly compiled = new Map<string, ValidateFunction>();
  private readonly workers = new Map<string, WorkerEntry>();
  /** The last accepted description per capability, kept after its workers leave. */
  private readonly remembered = new Map<string, Admitted>();
  private lastFingerprint = '';
  private lastSet = new Map<string, string>();

  /**
   * Takes in a worker's hello. Returns the capabilities refused (their schema could not be accepted): the
   * caller keeps them off the worker's routable capabilities and raises an alert.
   */
  admit(
    workerId: string,
    workerType: string,
    capabilities: readonly string[],
    describes: readonly CapabilityDescriptor[] | undefined,
  ): Refusal[] {
    const { entry, refused } = this.take(workerType, capabilities, describes, false);
    this.workers.set(workerId, entry);
    return refused;
  }

  /** The same checks for a hello and for a directory record. */
  private take(
    workerType: string,
    capabilities: readonly string[],
    describes: readonly CapabilityDescriptor[] | undefined,
    remote: boolean,
  ): { entry: WorkerEntry; refused: Refusal[] } {
    const refused: Refusal[] = [];
    const described = new Map<string, Admitted>();
    const offered = new Set(capabilities);
    let budget = HELLO_SCHEMA_BUDGET_BYTES;
    // One analysis budget for all the patterns of a hello: admitting it stalls the event loop at most so long.
    const patternBudget = new PatternBudget(HELLO_PATTERN_WORK_BUDGET);
    for (const d of describes ?? []) {
      if (!offered.has(d.capability) || described.has(d.capability)) continue;
      try {
        // The shape first (an iterative walk): serializing a value nested 10 000 deep would overflow the stack.
        checkSchemaShape(d, patternBudget);
        budget -= Buffer.byteLength(JSON.stringify(d.payloadSchema) + JSON.stringify(d.resultSchema ?? null));
        if (budget < 0) {
          throw new FleetError(
            'capability_refused',
            `capability "${d.capability}": the hello's schemas together are over the ${HELLO_SCHEMA_BUDGET_BYTES}-byte budget`,
            { details: { capability: d.capability, limit: HELLO_SCHEMA_BUDGET_BYTES } },
          );
        }
        described.set(d.capability, this.compileDescriptor(d));
      } catch (err) {
        const e =
          err instanceof FleetError
            ? err
            : new FleetError('capability_refused', `capability "${d.capability}": ${(err as Error).message}`);
        refused.push({ capability: d.capability, error: e });
      }
    }
    const refusedNames = new Set(refused.map((r) => r.capability));
    for (const [capability, admitted] of described) this.remembered.set(capability, admitted);
    const kept = [...described.values()].map((a) => a.descriptor);
    return {
      entry: {
        workerType,
        capabilities: capabilities.filter((c) => !refusedNames.has(c)),
        described,
        live: true,
        remote,
        published: { describes: kept, key: describesKey(kept) },
      },
      refused,
    };
  }

  /**
   * What to publish for a worker connected here: the descriptions the catalog accepted, and their hash (the
   * directory stores each distinct set once, under it).
   */
  published(workerId: string): { describes: CapabilityDescriptor[]; key: string } | undefined {
    const w = this.workers.get(workerId);
    return w && !w.remote && w.published.describes.length > 0 ? w.published : undefined;
  }

  /**
   * Merges the workers other managers hold (their directory records) into the catalog: new ones are taken
   * in with the checks of a hello, gone ones dropped, and a worker connected here is left as it is. Returns
   * the refusals (a record whose schema this manager cannot accept: its capability is not offered here) and
   * whether anything changed.
   */
  syncRemote(records: readonly RemoteWorker[]): { refused: Refusal[]; changed: boolean } {
    const refusals: Refusal[] = [];
    const seen = new Set<string>();
    let changed = false;
    for (const r of records) {
      const existing = this.workers.get(r.workerId);
      if (existing && !existing.remote) continue;
      seen.add(r.workerId);
      const live = r.status === 'online' || r.status === 'busy';
      const hash = r.describes && r.describesKey ? r.describesKey : describesKey(r.describes ?? []);
      const offer = `${r.workerType}\n${r.capabilities.join(',')}\n${hash}`;
      if (existing && existing.offer === offer) {
        changed ||= existing.live !== live;
        existing.live = live;
        continue;
      }
      changed = true;
      const { entry, refused } = this.take(r.workerType, r.capabilities, r.describes, true);
      entry.live = live;
      // An unchanged record is recognised next time without being checked again.
      entry.offer = offer;
      this.workers.set(r.workerId, entry);
      refusals.push(...refused);
    }
    for (const [id, w] of this.workers) {
      if (w.remote && !seen.has(id)) {
        this.workers.delete(id);
        changed = true;
      }
    }
    return { refused: refusals, changed };
  }

  /** Records whether a worker is connected; true when that changed. */
  setLive(workerId: string, live: boolean): boolean {
    const w = this.workers.get(workerId);
    if (!w || w.live === live) return false;
    w.live = live;
    return true;
  }

  /** The live workers known from the directory only: their type and the capabilities accepted here. */
  remoteOffers(): { workerType: string; capabilities: readonly string[] }[] {
    return [...this.workers.values()].filter((w) => w.remote && w.live);
  }

  /** A worker connected here is gone (a record of it elsewhere comes back with the next sync). */
  forget(workerId: string): void {
    if (!this.workers.get(workerId)?.remote) this.workers.delete(workerId);
  }

  has(workerId: string): boolean {
    return this.workers.has(workerId);
  }

  /** What the fleet offers now: capabilities with at least one connected worker, sorted by name. */
  entries(): CatalogEntry[] {
    return this.collect();
  }

  /** One capability's entry, without building the others' (the MCP gateway asks on every call). */
  entry(capability: string): CatalogEntry | undefined {
    return this.collect(capability)[0];
  }

  private collect(only?: string): CatalogEntry[] {
    const byCapability = new Map<string, { types: Set<string>; workers: number; admitted?: Admitted }>();
    for (const w of this.workers.values()) {
      if (!w.live) continue;
      for (const c of w.capabilities) {
        if (only !== undefined && c !== only) continue;
        const e = byCapability.get(c) ?? { types: new Set<string>(), workers: 0 };
        e.types.add(w.workerType);
        e.workers += 1;
        e.admitted ??= w.described.get(c);
        byCapability.set(c, e);
      }
    }
    return [...byCapability.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([capability, e]) => {
        const d = e.admitted?.descriptor;
        return {
          capability,
          description: d?.description ?? '',
          ...(d ? { payloadSchema: d.payloadSchema } : {}),
          ...(d?.resultSchema ? { resultSchema: d.resultSchema } : {}),
          idempotent: d?.idempotent ?? false,
          readOnly: d?.readOnly ?? false,
          artifactTypes: d?.artifactTypes ?? [],
          workerTypes: [...e.types].sort(),
          workers: e.workers,
        };
      });
  }

  /**
   * Throws `invalid_payload` naming the JSON path and the rule when the payload breaks the capability's
   * schema. A capability nobody described (peers from before issue 18) is not checked here.
   */
  validate(capability: string, payload: unknown): void {
    const admitted = this.liveDescription(capability) ?? this.remembered.get(capability);
    if (!admitted) return;
    if (admitted.validate(payload)) return;
    throw payloadError(capability, admitted.validate.errors ?? []);
  }

  /** The typed refusal of a capability nobody offers, with the known ones and the closest as a hint. */
  static unknownCapability(capability: string, known: Iterable<string>): FleetError {
    const sorted = [...known].sort();
    const suggestion = closest(capability, sorted);
    return new FleetError(
      'unknown_capability',
      // The known ones travel in details (a fleet may offer many); the message carries the likely fix.
      `no worker type offers "${capability}"${suggestion ? ` (did you mean "${suggestion}"?)` : ''}`,
      { details: { known: sorted, ...(suggestion ? { suggestion } : {}) } },
    );
  }

  /** The change since the last call, or undefined when the catalog is as it was. */
  takeChange(): CatalogChange | undefined {
    const now = new Map(this.entries().map((e) => [e.capability, this.fingerprintOf(e)] as const));
    const fingerprint = [...now.entries()].map(([c, f]) => `${c}=${f}`).join(';');
    if (fingerprint === this.lastFingerprint) return undefined;
    const before = this.lastSet;
    this.lastFingerprint = fingerprint;
    this.lastSet = now;
    return {
      capabilities: [...now.keys()],
      added: [...now.keys()].filter((c) => !before.has(c)),
      removed: [...before.keys()].filter((c) => !now.has(c)),
      changed: [...now.keys()].filter((c) => before.has(c) && before.get(c) !== now.get(c)),
    };
  }

  private fingerprintOf(e: CatalogEntry): string {
    const admitted = this.liveDescription(e.capability);
    return admitted ? admitted.key : 'undescribed';
  }

  private liveDescription(capability: string): Admitted | undefined {
    for (const w of this.workers.values()) {
      if (!w.live) continue;
      const a = w.described.get(capability);
      if (a) return a;
    }
    return undefined;
  }

  private compileDescriptor(d: CapabilityDescriptor): Admitted {
    const refuse = (message: string, details?: Record<string, unknown>): never => {
      throw new FleetError('capability_refused', `capability "${d.capability}": ${message}`, {
        details: { capability: d.capability, ...details },
      });
    };
    const text = JSON.stringify(d.payloadSchema);
    const key = createHash('sha256').update(text).digest('hex');
    let validate = this.compiled.get(key);
    if (!validate) {
      try {
        // ajv checks the schema against the 2020-12 meta-schema before compiling it (validateSchema).
        validate = this.ajv.compile(d.payloadSchema);
      } catch (err) {
        refuse(`payloadSchema does not compile: ${(err as Error).message.slice(0, 500)}`);
      }
      if (this.compiled.size >= MAX_COMPILED) {
        const oldest = this.compiled.keys().next().value;
        if (oldest !== undefined) this.compiled.delete(oldest);
      }
      this.compiled.set(key, validate!);
    }
    if (d.resultSchema !== undefined) {
      try {
        // Only checked for being a schema: results are the worker's word, checked by MCP clients.
        if (!this.ajv.validateSchema(d.resultSchema)) throw new Error(this.ajv.errorsText(this.ajv.errors));
      } catch (err) {
        refuse(`resultSchema is not a JSON Schema: ${(err as Error).message.slice(0, 500)}`);
      }
    }
    const descriptionKey = createHash('sha256').update(JSON.stringify(d)).digest('hex');
    return { descriptor: d, validate: validate!, key: descriptionKey };
  }
}

/** The content address of a set of descriptions (the same for every replica of a worker version). */
export function describesKey(describes: readonly CapabilityDescriptor[]): string {
  return createHash('sha256').update(JSON.stringify(describes)).digest('hex');
}

/**
 * Bounded size and shape, and no pattern that can backtrack catastrophically, in both schemas (the manager runs
 * the payload's, MCP clients the result's).
 */
function checkSchemaShape(d: CapabilityDescriptor, patternBudget: PatternBudget): void {
  const refuse = (message: string, details?: Record<string, unknown>): never => {
    throw new FleetError('capability_refused', `capability "${d.capability}": ${message}`, {
      details: { capability: d.capability, ...details },
    });
  };
  for (const [what, schema] of [
    ['payloadSchema', d.payloadSchema],
    ['resultSchema', d.resultSchema],
  ] as const) {
    if (schema === undefined) continue;
    try {
      checkJsonLimits(schema, SCHEMA_LIMITS, what, 'capability_refused');
    } catch (err) {
      refuse((err as FleetError).message, (err as FleetError).details);
    }
    const unsafe = unsafePattern(schema, patternBudget);
    if (unsafe !== undefined)
      refuse(
        `${what} has a pattern the manager will not run (${unsafe.reason}): ${unsafe.pattern.slice(0, 200)}`,
        {
          pattern: unsafe.pattern.slice(0, 200),
        },
      );
  }
}

/**
 * The first `pattern` (or patternProperties key) in a schema that could backtrack catastrophically
 * (regex-safety.ts decides). Iterative: bounded input.
 */
function unsafePattern(
  schema: unknown,
  budget: PatternBudget,
): { pattern: string; reason: string } | undefined {
  const verdict = (p: string) => {
    let v = PATTERN_VERDICTS.get(p);
    if (!v) {
      v = checkPattern(p, budget);
      // Every replica of a worker type sends the same patterns: each is analysed once.
      if (PATTERN_VERDICTS.size >= MAX_COMPILED * 4) PATTERN_VERDICTS.clear();
      if (v.reason !== 'too complex to analyse') PATTERN_VERDICTS.set(p, v);
    }
    return v.safe ? undefined : { pattern: p, reason: v.reason ?? 'unsafe' };
  };
  const stack: unknown[] = [schema];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v !== 'object' || v === null) continue;
    if (Array.isArray(v)) {
      stack.push(...(v as unknown[]));
      continue;
    }
    for (const [k, child] of Object.entries(v)) {
      if (k === 'pattern' && typeof child === 'string') {
        const bad = verdict(child);
        if (bad) return bad;
      }
      if (k === 'patternProperties' && typeof child === 'object' && child !== null) {
        for (const p of Object.keys(child)) {
          const bad = verdict(p);
          if (bad) return bad;
        }
      }
      stack.push(child);
    }
  }
  return undefined;
}

/** `/options/0/width` → `options[0].width`; the root is `(root)`. */
function dotted(pointer: string): string {
  if (pointer === '') return '(root)';
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s, i) => (/^\d+$/.test(s) ? `[${s}]` : i === 0 ? s : `.${s}`))
    .join('');
}

function payloadError(capability: string, errors: ErrorObject[]): FleetError {
  const e = errors[0];
  if (!e) return new FleetError('invalid_payload', `invalid payload for "${capability}"`);
  let pointer = e.instancePath;
  const params = e.params as Record<string, unknown>;
  // The field at fault, not its parent: a missing or extra property is named by itself.
  if (e.keyword === 'required' && typeof params.missingProperty === 'string')
    pointer += `/${params.missingProperty}`;
  if (e.keyword === 'additionalProperties' && typeof params.additionalProperty === 'string')
    pointer += `/${params.additionalProperty}`;
  const path = dotted(pointer);
  const message =
    e.keyword === 'additionalProperties'
      ? 'is not an allowed property'
      : e.keyword === 'required'
        ? 'is required'
        : (e.message ?? 'is invalid');
  return new FleetError(
    'invalid_payload',
    `invalid payload for "${capability}" at ${path}: ${message} (rule: ${e.keyword})`,
    {
      details: {
        capability,
        path,
        pointer,
        rule: e.keyword,
        schemaPath: e.schemaPath,
        params,
      },
    },
  );
}
