/**
 * The worker kinds Fleet ships, by the spec's workerType, with the config section each reads. Kinds load
 * lazily so `fleet worker echo` never pays for Chromium or the MCP SDK.
 */
import type { WorkerSectionConfig, WorkerSectionKey } from '../config/schema.js';
import type { WorkerKind } from './common/worker-kind.js';

export interface KindEntry {
  section: WorkerSectionKey;
  load(): Promise<(config: WorkerSectionConfig) => WorkerKind>;
}

export const WORKER_KINDS: Record<string, KindEntry> = {
  echo: { section: 'echo', load: async () => (await import('./echo/index.js')).createEchoKind },
  'python-sandbox': {
    section: 'python_sandbox',
    load: async () => (await import('./python-sandbox/index.js')).createPythonSandboxKind,
  },
  'figma-mcp': {
    section: 'figma_mcp',
    load: async () => (await import('./figma-mcp/index.js')).createFigmaKind,
  },
  'browser-worker': {
    section: 'browser_worker',
    load: async () => (await import('./browser/index.js')).createBrowserKind,
  },
};

const ALIASES: Record<string, string> = {
  python: 'python-sandbox',
  'python-sandbox': 'python-sandbox',
  browser: 'browser-worker',
  'browser-worker': 'browser-worker',
  figma: 'figma-mcp',
  'figma-mcp': 'figma-mcp',
  echo: 'echo',
};

export function resolveKindName(name: string): string | undefined {
  const type = ALIASES[name] ?? name;
  return WORKER_KINDS[type] ? type : undefined;
}

/** Every name a kind answers to (types and short aliases), for suggestions. */
export function kindNames(): string[] {
  return Object.keys(ALIASES);
}
