/**
 * The import boundaries of eslint.config.js, run on deliberate violations: a rule that never fires would
 * pass `npx eslint` just as well as one that holds, so each boundary is attacked here.
 */
import { pathToFileURL } from 'node:url';
import { ESLint, type Linter } from 'eslint';
import tseslint from 'typescript-eslint';
import { describe, expect, it } from 'vitest';

/** The project's own boundary blocks, without the type-aware rules (they need files on disk). */
async function boundaryLinter(): Promise<ESLint> {
  const { default: config } = (await import(pathToFileURL(`${process.cwd()}/eslint.config.js`).href)) as {
    default: Linter.Config[];
  };
  const blocks = config.filter((c) => c.rules?.['no-restricted-imports'] !== undefined);
  expect(blocks.length).toBeGreaterThanOrEqual(4);
  return new ESLint({
    cwd: process.cwd(),
    overrideConfigFile: true,
    overrideConfig: [{ languageOptions: { parser: tseslint.parser } }, ...blocks],
  });
}

async function violations(filePath: string, code: string): Promise<string[]> {
  const [result] = await (await boundaryLinter()).lintText(code, { filePath });
  return (result?.messages ?? []).map((m) => `${m.ruleId}: ${m.message}`);
}

describe('import boundaries', () => {
  it('cli/ may not reach into the manager: its registry, dispatcher or queue', async () => {
    for (const path of [
      '../manager/registry/worker-registry.js',
      '../manager/dispatch/dispatcher.js',
      '../manager/queue/redis/task-queue.js',
      '../manager/manager.js',
    ]) {
      const found = await violations('src/cli/violation.ts', `import { x } from '${path}';\nexport { x };\n`);
      expect(found, path).toEqual([expect.stringMatching(/^no-restricted-imports: .*manager\/public\.js/)]);
    }
  });

  it("cli/ may use the manager's public module, its http helpers, the dashboard's entry, client/ and protocol/", async () => {
    const code = [
      "import { WorkerManager } from '../manager/public.js';",
      "import { createApiServer } from '../manager/http/server.js';",
      "import { dashboardPlugin } from '../manager/dashboard/index.js';",
      "import { FleetClient } from '../client/fleet-client.js';",
      "import { FleetError } from '../protocol/errors.js';",
      'export { WorkerManager, createApiServer, dashboardPlugin, FleetClient, FleetError };',
    ].join('\n');
    expect(await violations('src/cli/allowed.ts', code)).toEqual([]);
  });

  it('the dashboard may not import the server or the manager internals', async () => {
    for (const path of ['../http/server.js', '../manager.js', '../queue/task.js', '../../config/schema.js']) {
      const found = await violations(
        'src/manager/dashboard/violation.ts',
        `import { x } from '${path}';\nexport { x };\n`,
      );
      expect(found, path).toHaveLength(1);
    }
    const allowed = [
      "import { WorkerManager } from '../public.js';",
      "import { authorize } from '../http/auth.js';",
      "import { publicTask } from '../http/views.js';",
      "import { FleetError } from '../../protocol/errors.js';",
      "import { DashboardAggregator } from './aggregator.js';",
      'export { WorkerManager, authorize, publicTask, FleetError, DashboardAggregator };',
    ].join('\n');
    expect(await violations('src/manager/dashboard/allowed.ts', allowed)).toEqual([]);
  });

  it('workers never import the manager; protocol imports nothing of ours', async () => {
    expect(
      await violations(
        'src/workers/echo/x.ts',
        "import { x } from '../../manager/public.js';\nexport { x };\n",
      ),
    ).toHaveLength(1);
    expect(
      await violations('src/protocol/x.ts', "import { x } from '../manager/public.js';\nexport { x };\n"),
    ).toHaveLength(1);
  });
});
