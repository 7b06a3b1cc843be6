import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { workerConfig } from '../../../helpers/fake-manager.js';
import {
  startFakeFigma,
  type FakeFigma,
  type FakeFigmaOptions,
} from '../../../../src/workers/figma-mcp/fake/fake-figma.js';
import { createFigmaCore } from '../../../../src/workers/figma-mcp/index.js';
import type { FigmaCore } from '../../../../src/workers/figma-mcp/core/figma-core.js';
import type { WorkerSectionConfig } from '../../../../src/config/schema.js';

export interface Rig {
  fake: FakeFigma;
  config: WorkerSectionConfig;
  core: FigmaCore;
  workspace: string;
  close(): Promise<void>;
}

/** A fake Figma plus a core wired to it; rate tiers high so tests measure behaviour, not the bucket. */
export async function rig(
  figmaConfig: Record<string, unknown> = {},
  fakeOptions: FakeFigmaOptions = {},
  section: Record<string, unknown> = {},
): Promise<Rig> {
  const fake = await startFakeFigma(fakeOptions);
  const workspace = await mkdtemp(join(tmpdir(), 'figma-ws-'));
  const config = workerConfig('figma-mcp', {
    workspace,
    ...section,
    figma_config: {
      api_token: fake.token,
      team_id: fake.teamId,
      base_url: fake.url,
      rate_limits: {
        tier1: { per_minute: 100_000 },
        tier2: { per_minute: 100_000 },
        tier3: { per_minute: 100_000 },
      },
      retry: { base_delay: '5ms', max_delay: '20ms' },
      ...figmaConfig,
    },
  });
  const core = createFigmaCore(config);
  return {
    fake,
    config,
    core,
    workspace,
    close: async () => {
      await fake.close();
      await rm(workspace, { recursive: true, force: true });
    },
  };
}

export function call(
  core: FigmaCore,
  name: string,
  args: Record<string, unknown>,
  signal = new AbortController().signal,
) {
  return core.call(name, args, { signal });
}
