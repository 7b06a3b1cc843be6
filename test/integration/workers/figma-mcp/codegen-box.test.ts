/**
 * The generated HTML, rendered in real Chromium, must put every layer where Figma has it: the bounding box
 * of each element (relative to the root) matches the node's absoluteBoundingBox within 2 px.
 */
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DESIGN_SYSTEM_KEY, MARKETING_KEY } from '../../../../src/workers/figma-mcp/fake/fixtures/index.js';
import { launchChromium } from '../../../helpers/chromium.js';
import { boxesOff, figmaBoxes, loadHtml } from './boxes.js';
import { call, rig, type Rig } from './setup.js';

let r: Rig;
let browser: Browser;

beforeAll(async () => {
  r = await rig();
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await r?.close();
});

async function compare(fileKey: string, nodeId: string) {
  const gen = await call(r.core, 'figma_generate_code', {
    file: fileKey,
    node_id: nodeId,
    framework: 'html',
  });
  const nodes = await r.core.client.getFileNodes(
    fileKey,
    [nodeId],
    {},
    { signal: new AbortController().signal, deadline: Date.now() + 10_000 },
  );
  const expected = figmaBoxes(nodes.nodes[nodeId]!.document);
  const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
  try {
    await loadHtml(page, gen.output.html as string);
    const res = await boxesOff(page, expected);
    return { ...res, expected: expected.size };
  } finally {
    await page.close();
  }
}

describe('generated HTML in Chromium', () => {
  it('lays out the marketing landing page like Figma', async () => {
    const res = await compare(MARKETING_KEY, '1:1');
    expect(res.off).toEqual([]);
    expect(res.count).toBeGreaterThan(50);
    expect(res.count).toBe(res.expected);
  }, 30_000);

  it('lays out the component set (wrapping variants) and the usage frame like Figma', async () => {
    for (const id of ['20:0', '3:1', '4:1']) {
      const res = await compare(DESIGN_SYSTEM_KEY, id);
      expect(res.off, id).toEqual([]);
      expect(res.count).toBe(res.expected);
    }
  }, 30_000);
});
