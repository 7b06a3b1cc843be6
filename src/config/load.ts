/**
 * File + environment → resolved config. Precedence: defaults < YAML file < environment variables.
 * `${VAR}` inside YAML strings is replaced from the environment (the spec writes `api_token: "${FIGMA_API_TOKEN}"`);
 * a string that becomes empty counts as not set.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { FleetError } from '../protocol/errors.js';
import { BrowserConfigSchema } from '../workers/browser/options.js';
import { FigmaOptionsSchema } from '../workers/figma-mcp/options.js';
import { SandboxOptionsSchema } from '../workers/python-sandbox/options.js';
import { FleetConfigSchema, type FleetConfig } from './schema.js';
import { closest, describeUnknownKey, findUnknownKeys } from './strict-keys.js';

type Env = Record<string, string | undefined>;
type Obj = Record<string, unknown>;

export const DEFAULT_CONFIG_FILES = ['fleet.yaml', 'fleet.yml'];

export function interpolate(value: unknown, env: Env): unknown {
  if (typeof value === 'string') {
    const out = value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => env[name] ?? '');
    return out === '' && value !== '' ? undefined : out;
  }
  if (Array.isArray(value)) return value.map((v) => interpolate(v, env));
  if (value && typeof value === 'object') {
    const out: Obj = {};
    for (const [k, v] of Object.entries(value)) {
      const r = interpolate(v, env);
      if (r !== undefined) out[k] = r;
    }
    return out;
  }
  return value;
}

function section(root: Obj, ...path: string[]): Obj {
  let node = root;
  for (const key of path) {
    const next = node[key];
    if (next === undefined || next === null) node[key] = {};
    else if (typeof next !== 'object' || Array.isArray(next)) {
      throw new FleetError('config_invalid', `config: ${path.join('.')}: expected a mapping`);
    }
    node = node[key] as Obj;
  }
  return node;
}

function envNumber(env: Env, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isFinite(n))
    throw new FleetError('config_invalid', `environment ${name}: "${raw}" is not a number`);
  return n;
}

function envBool(env: Env, name: string): boolean | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new FleetError('config_invalid', `environment ${name}: "${raw}" is not a boolean`);
}

function envString(env: Env, name: string): string | undefined {
  const raw = env[name];
  return raw === undefined || raw === '' ? undefined : raw;
}

const WORKER_KEYS = ['python_sandbox', 'figma_mcp', 'browser_worker', 'echo'] as const;

/** The spec's environment variables, plus FLEET_* for the manager. */
export function applyEnv(raw: Obj, env: Env): Obj {
  const set = (value: unknown, ...path: string[]) => {
    if (value === undefined) return;
    const key = path.pop()!;
    section(raw, ...path)[key] = value;
  };
  set(envNumber(env, 'WORKER_PYTHON_PORT'), 'python_sandbox', 'port');
  set(envNumber(env, 'WORKER_FIGMA_PORT'), 'figma_mcp', 'port');
  set(envNumber(env, 'WORKER_BROWSER_PORT'), 'browser_worker', 'port');
  set(envNumber(env, 'WORKER_ECHO_PORT'), 'echo', 'port');
  const interval = envNumber(env, 'WORKER_HEALTH_CHECK_INTERVAL');
  if (interval !== undefined) {
    set(interval, 'manager', 'health', 'interval');
    for (const k of WORKER_KEYS) set(interval, k, 'health_check', 'interval');
  }
  set(envNumber(env, 'WORKER_MAX_RETRIES'), 'manager', 'retries', 'max_attempts');
  const timeout = envNumber(env, 'WORKER_TIMEOUT');
  if (timeout !== undefined) for (const k of WORKER_KEYS) set(timeout, k, 'timeout');

  set(envNumber(env, 'BROWSER_POOL_SIZE'), 'browser_worker', 'browser_config', 'pool_size');
  set(envNumber(env, 'BROWSER_MEMORY_LIMIT'), 'browser_worker', 'browser_config', 'memory_limit_mb');
  set(envBool(env, 'BROWSER_AUTO_RESTART'), 'browser_worker', 'browser_config', 'auto_restart');
  set(envBool(env, 'BROWSER_SOFTWARE_RENDERING'), 'browser_worker', 'browser_config', 'software_rendering');
  set(envBool(env, 'BROWSER_CPU_OPTIMIZED'), 'browser_worker', 'browser_config', 'cpu_optimized');
  set(envString(env, 'BROWSER_EXECUTABLE_PATH'), 'browser_worker', 'browser_config', 'executable_path');

  set(envString(env, 'FIGMA_API_TOKEN'), 'figma_mcp', 'figma_config', 'api_token');
  set(envString(env, 'FIGMA_TEAM_ID'), 'figma_mcp', 'figma_config', 'team_id');
  set(envString(env, 'FIGMA_API_BASE_URL'), 'figma_mcp', 'figma_config', 'base_url');
  set(envString(env, 'FIGMA_AUTH'), 'figma_mcp', 'figma_config', 'auth');

  set(envString(env, 'FLEET_HOST'), 'manager', 'host');
  set(envNumber(env, 'FLEET_PORT'), 'manager', 'port');
  set(envString(env, 'FLEET_TOKEN'), 'manager', 'token');
  set(envString(env, 'FLEET_READ_TOKEN'), 'manager', 'read_token');
  set(envString(env, 'FLEET_STRATEGY'), 'manager', 'strategy');
  set(envString(env, 'FLEET_STORE'), 'manager', 'store');
  set(envString(env, 'FLEET_REDIS_URL'), 'manager', 'redis', 'url');
  set(envString(env, 'FLEET_REDIS_PREFIX'), 'manager', 'redis', 'prefix');
  set(envString(env, 'FLEET_LOG_LEVEL'), 'manager', 'log_level');
  set(envNumber(env, 'FLEET_QUEUE_MAX'), 'manager', 'queue', 'max_size');
  const workers = envString(env, 'FLEET_WORKERS');
  if (workers)
    set(
      workers
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
      'manager',
      'workers',
    );
  return raw;
}

/** The kinds' own sub-sections: the shared schema passes them through, their keys are checked all the same. */
const KIND_SUB_SECTIONS = {
  'python_sandbox.sandbox': SandboxOptionsSchema,
  'browser_worker.browser_config': BrowserConfigSchema,
  'figma_mcp.figma_config': FigmaOptionsSchema,
};

/**
 * FLEET_* variables Fleet reads outside the config (the CLI's, the container health check's, the ones the
 * workers set for their own children, the test suite's). applyEnv's own names are found by running it.
 */
const OTHER_FLEET_ENV = [
  'FLEET_URL',
  'FLEET_CONFIG',
  'FLEET_TOKEN',
  'FLEET_WORKER_TOKEN',
  'FLEET_LOG_FORMAT',
  'FLEET_SUPERVISED',
  'FLEET_HEALTH_URL',
  'FLEET_HEALTH_TIMEOUT_MS',
  'FLEET_BROWSER_DIR',
  'FLEET_REAL_BROWSER',
  'FLEET_CGROUPS',
  'FLEET_CGROUP_PROCS',
  'FLEET_BROWSER_POOL',
  'FLEET_CHROMIUM_PATH',
  'FLEET_TEST_REDIS',
  'FLEET_CHAOS_SEED',
  'FLEET_ECHO_EXECUTION_LOG',
];

export function knownFleetEnv(): string[] {
  const seen = new Set(OTHER_FLEET_ENV);
  const recorder = new Proxy(
    {},
    {
      get: (_t, name) => {
        if (typeof name === 'string') seen.add(name);
        return undefined;
      },
    },
  );
  applyEnv({}, recorder);
  return [...seen].filter((n) => n.startsWith('FLEET_')).sort();
}

/** A FLEET_* variable Fleet does not read is a typo (FLEET_PROT=4500 must not start on 3000 in silence). */
export function checkFleetEnv(env: Env): void {
  const known = knownFleetEnv();
  const unknown = Object.keys(env)
    .filter((n) => n.startsWith('FLEET_') && !known.includes(n))
    .sort();
  if (unknown.length === 0) return;
  const lines = unknown.map((n) => {
    const s = closest(n, known);
    return `${n}${s ? ` (did you mean ${s}?)` : ''}`;
  });
  throw new FleetError(
    'config_invalid',
    `unknown environment variable${unknown.length > 1 ? 's' : ''} ${lines.join(', ')}; Fleet reads ${known.join(', ')}`,
    { details: { unknown } },
  );
}

export function parseConfig(raw: unknown): FleetConfig {
  const unknownKeys = findUnknownKeys(FleetConfigSchema, raw ?? {}, KIND_SUB_SECTIONS);
  if (unknownKeys.length > 0) {
    const lines = unknownKeys.slice(0, 10).map(describeUnknownKey);
    throw new FleetError('config_invalid', `invalid configuration: ${lines.join('; ')}`, {
      details: { issues: lines },
    });
  }
  const parsed = FleetConfigSchema.safeParse(raw ?? {});
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.slice(0, 10).map((i) => {
    const where = i.path.length ? i.path.join('.') : '(root)';
    const msg = i.code === 'unrecognized_keys' ? `unknown field(s) ${i.keys.join(', ')}` : i.message;
    return `${where}: ${msg}`;
  });
  throw new FleetError('config_invalid', `invalid configuration: ${lines.join('; ')}`, {
    details: { issues: lines },
  });
}

export interface LoadOptions {
  /** Path of the YAML file; when absent FLEET_CONFIG, then ./fleet.yaml if it exists. */
  file?: string;
  env?: Env;
  /** Applied after the file and before the environment (CLI flags that set config). */
  overrides?: Obj;
}

/** The file loadConfig reads: the one given, else FLEET_CONFIG, else ./fleet.yaml (or .yml) when present. */
export function configFileFor(file: string | undefined, env: Env = process.env): string | undefined {
  return file ?? envString(env, 'FLEET_CONFIG') ?? DEFAULT_CONFIG_FILES.find((f) => existsSync(f));
}

export function loadConfig(options: LoadOptions = {}): FleetConfig {
  const env = options.env ?? process.env;
  checkFleetEnv(env);
  const file = configFileFor(options.file, env);
  let raw: Obj = {};
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new FleetError('config_invalid', `cannot read config file ${file}: ${(err as Error).message}`);
    }
    let doc: unknown;
    try {
      doc = parseYaml(text);
    } catch (err) {
      throw new FleetError(
        'config_invalid',
        `config file ${file} is not valid YAML: ${(err as Error).message}`,
      );
    }
    if (doc !== null && doc !== undefined && (typeof doc !== 'object' || Array.isArray(doc))) {
      throw new FleetError('config_invalid', `config file ${file}: the top level must be a mapping`);
    }
    raw = (interpolate(doc ?? {}, env) as Obj) ?? {};
  }
  if (options.overrides) raw = deepMerge(raw, options.overrides);
  return parseConfig(applyEnv(raw, env));
}

function deepMerge(a: Obj, b: Obj): Obj {
  const out: Obj = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] =
      v &&
      typeof v === 'object' &&
      !Array.isArray(v) &&
      prev &&
      typeof prev === 'object' &&
      !Array.isArray(prev)
        ? deepMerge(prev as Obj, v as Obj)
        : v;
  }
  return out;
}
