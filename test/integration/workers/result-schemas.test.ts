/**
 * Issue 18: the result schema each capability advertises is what it really returns. One real task per
 * capability of every worker kind (python-sandbox in its sandbox, Chromium, figma against the fake Figma
 * API, echo), each over the real runtime and WebSocket; the fake manager checks every task.result against
 * the schema in the worker's hello with ajv (test/helpers/result-schemas.ts) and rejects a mismatch. The
 * worker tests do the same for every run they make; this file makes sure no capability is left out.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { createBrowserKind } from '../../../src/workers/browser/index.js';
import { createEchoKind } from '../../../src/workers/echo/index.js';
import {
  createFigmaKind,
  MARKETING_KEY,
  startFakeFigma,
  type FakeFigma,
} from '../../../src/workers/figma-mcp/index.js';
import { WORKER_KINDS } from '../../../src/workers/kinds.js';
import { browserSection } from '../../fixtures/browser/kind.js';
import { startTestServer, type TestServer } from '../../fixtures/browser/test-server.js';
import { buildWheel } from '../../fixtures/python/build-wheel.js';
import {
  connectFakeManager,
  startWorker,
  workerConfig,
  type FakeManager,
  type StartedWorker,
  type TaskAnswer,
} from '../../helpers/fake-manager.js';
import { RESULT_CHECKS } from '../../helpers/result-schemas.js';
import { sid, startPythonWorker, type Harness } from './python-sandbox/helpers.js';

const workers: StartedWorker[] = [];
const managers: FakeManager[] = [];
let python: Harness | undefined;
let server: TestServer | undefined;
let fake: FakeFigma | undefined;
let wheels: string | undefined;
let figmaWorkspace: string | undefined;

async function connect(worker: StartedWorker): Promise<FakeManager> {
  workers.push(worker);
  const fm = await connectFakeManager(worker.endpoint);
  managers.push(fm);
  return fm;
}

function succeeded(answer: TaskAnswer): Record<string, unknown> {
  if (answer.type !== 'task.result')
    throw new Error(`expected a result, got ${JSON.stringify(answer.error)}`);
  return answer.output as Record<string, unknown>;
}

afterAll(async () => {
  for (const fm of managers) await fm.close().catch(() => undefined);
  for (const w of workers) await w.stop().catch(() => undefined);
  await python?.stop();
  await server?.close();
  await fake?.close();
  for (const dir of [wheels, figmaWorkspace]) if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('every capability returns what its result schema says', () => {
  beforeAll(() => RESULT_CHECKS.clear());

  it('echo: echo and sleep match; fail and crash never return a result', async () => {
    const fm = await connect(await startWorker(createEchoKind(workerConfig('echo'))));
    succeeded(await fm.assign('echo', { any: ['thing', 1] }));
    succeeded(
      await fm.assign('echo', { artifact: { name: 'a.txt', contentType: 'text/plain', base64: 'aGk=' } }),
    );
    succeeded(await fm.assign('sleep', { ms: 5 }));
    expect((await fm.assign('fail', { code: 'not_found' })).type).toBe('task.error');
  });

  it('python-sandbox: python-execution, file-operations (every op), package-install, code-analysis', async () => {
    wheels = mkdtempSync(join(tmpdir(), 'fleet-wheels-'));
    chmodSync(wheels, 0o755);
    buildWheel(wheels, 'fleetschema', '1.0.0', 'X = 1\n');
    python = await startPythonWorker({ pool_size: 1, wheel_dir: wheels });
    const fm = python.fm;
    const s = sid('schemas');
    const at = (capability: string, payload: unknown) =>
      fm.assign(capability, payload, { sessionId: s, timeoutMs: 30_000 });
    // A value, a raised exception, a syntax error, a figure and a written file: every branch of a run.
    succeeded(await fm.assign('python-execution', { code: '1 + 1' }, { timeoutMs: 30_000 }));
    succeeded(
      await at('python-execution', { code: 'open("f.txt", "w").write("x")\nprint("hi")\n{"a": [1]}' }),
    );
    expect(succeeded(await at('python-execution', { code: '1/0' })).ok).toBe(false);
    expect(succeeded(await at('python-execution', { code: 'def (' })).ok).toBe(false);
    succeeded(
      await at('python-execution', {
        code: 'import matplotlib\nmatplotlib.use("Agg")\nimport matplotlib.pyplot as plt\nplt.plot([1, 2])',
      }),
    );
    for (const payload of [
      { op: 'write', path: 'd/a.txt', content: 'hello' },
      { op: 'upload', path: 'd/b.bin', data: Buffer.from([1, 2]).toString('base64') },
      { op: 'read', path: 'd/a.txt' },
      { op: 'download', path: 'd/a.txt' },
      { op: 'list', path: '', recursive: true },
      { op: 'stat', path: 'd/a.txt' },
      { op: 'move', from: 'd/a.txt', to: 'd/c.txt' },
      { op: 'mkdir', path: 'e' },
      { op: 'delete', path: 'd', recursive: true },
    ])
      succeeded(await at('file-operations', payload));
    succeeded(await at('package-install', { packages: ['fleetschema'] }));
    succeeded(
      await fm.assign('code-analysis', { code: 'import os\ndef f(x):\n    """doc"""\n    return eval(x)\n' }),
    );
    succeeded(await fm.assign('code-analysis', { code: 'def (' }));
    succeeded(await at('python-execution', { closeSession: true }));
  }, 180_000);

  it('browser-worker: screenshot, scraping, pdf-generation, web-automation, testing, form-filling', async () => {
    server = await startTestServer();
    const kind = createBrowserKind(browserSection([server.port]));
    const fm = await connect(
      await startWorker(kind, { timeout: '120s', capabilities: kind.handlers.map((h) => h.capability) }),
    );
    const url = `${server.origin}/table.html`;
    succeeded(await fm.assign('screenshot', { url }));
    succeeded(await fm.assign('scraping', { url, selector: 'td', options: { schema: { title: 'h1' } } }));
    succeeded(await fm.assign('pdf-generation', { html: '<h1>hi</h1>' }));
    succeeded(await fm.assign('web-automation', { url, steps: [{ action: 'click', selector: 'h1' }] }));
    succeeded(
      await fm.assign('web-automation', {
        url,
        steps: [{ action: 'click', selector: '#missing', timeoutMs: 200 }],
        options: { onStepError: 'report' },
      }),
    );
    succeeded(await fm.assign('testing', { url, assertions: [{ type: 'title', equals: 'nope' }] }));
    succeeded(
      await fm.assign('form-filling', {
        html: '<form><label>Name <input name="n"></label></form>',
        fields: [{ label: 'Name', value: 'Ada' }],
        submit: false,
      }),
    );
  }, 180_000);

  it('figma-mcp: figma-design, ui-generation, asset-export, design-analysis against the fake Figma API', async () => {
    fake = await startFakeFigma({ host: '127.0.0.1', port: 0 });
    figmaWorkspace = mkdtempSync(join(tmpdir(), 'figma-ws-'));
    const kind = createFigmaKind(
      workerConfig('figma-mcp', {
        workspace: figmaWorkspace,
        figma_config: { api_token: fake.token, team_id: fake.teamId, base_url: fake.url },
      }),
    );
    const fm = await connect(await startWorker(kind));
    succeeded(await fm.assign('figma-design', { operation: 'list_projects' }));
    succeeded(await fm.assign('figma-design', { operation: 'list_files', project_id: '102' }));
    succeeded(await fm.assign('figma-design', { operation: 'get_outline', file: MARKETING_KEY }));
    succeeded(
      await fm.assign('figma-design', { operation: 'get_design', file: MARKETING_KEY, node_ids: ['1:1'] }),
    );
    succeeded(await fm.assign('ui-generation', { file: MARKETING_KEY, node_id: '1:1' }));
    succeeded(
      await fm.assign('asset-export', {
        operation: 'export_assets',
        file: MARKETING_KEY,
        node_ids: ['1:1'],
        format: 'png',
        scale: 0.25,
      }),
    );
    succeeded(await fm.assign('asset-export', { operation: 'export_image_fills', file: MARKETING_KEY }));
    succeeded(await fm.assign('design-analysis', { file: MARKETING_KEY }));
  }, 120_000);

  it('checked a real result of every capability a worker kind offers, except the two that never return', () => {
    const config = parseConfig({});
    const offered = Object.values(WORKER_KINDS).flatMap((k) => config[k.section].capabilities);
    const neverReturn = ['fail', 'crash'];
    const unchecked = offered.filter((c) => !neverReturn.includes(c) && !RESULT_CHECKS.get(c));
    expect(unchecked).toEqual([]);
  });
});
