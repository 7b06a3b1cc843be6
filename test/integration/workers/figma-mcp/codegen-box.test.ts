/**
 * The generated HTML, rendered in real Chromium, must put every layer where Figma has it: the bounding box
 * of each element (relative to the root) matches the node's absoluteBoundingBox within 2 px.
 */
import type { Node } from '@figma/rest-api-spec';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DESIGN_SYSTEM_KEY, MARKETING_KEY } from '../../../../src/workers/figma-mcp/fake/fixtures/index.js';
import { launchChromium } from '../../../helpers/chromium.js';
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

function figmaBoxes(root: Node): Map<string, { x: number; y: number; w: number; h: number }> {
  const out = new Map<string, { x: number; y: number; w: number; h: number }>();
  const origin = (root as { absoluteBoundingBox: { x: number; y: number } }).absoluteBoundingBox;
  const walk = (n: Node) => {
    const b = (n as { absoluteBoundingBox?: { x: number; y: number; width: number; height: number } | null })
      .absoluteBoundingBox;
    if (b && n.visible !== false)
      out.set(n.id, { x: b.x - origin.x, y: b.y - origin.y, w: b.width, h: b.height });
    for (const c of (n as { children?: Node[] }).children ?? []) walk(c);
  };
  walk(root);
  return out;
}

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
    // Assets are not served here: the boxes must not depend on image bytes or fonts.
    await page.route('**/*', (route) =>
      route.request().url().startsWith('data:') ? route.continue() : route.abort(),
    );
    await page.setContent(gen.output.html as string, { waitUntil: 'load' });
    const rects = await page.evaluate(() => {
      const all = Array.from(document.querySelectorAll<HTMLElement>('[data-figma-id]'));
      const root = all[0]!.getBoundingClientRect();
      return all.map((el) => {
        const b = el.getBoundingClientRect();
        return { id: el.dataset.figmaId!, x: b.x - root.x, y: b.y - root.y, w: b.width, h: b.height };
      });
    });
    const off: string[] = [];
    for (const got of rects) {
      const want = expected.get(got.id);
      if (!want) {
        off.push(`${got.id}: not in the design`);
        continue;
      }
      const d = Math.max(
        Math.abs(got.x - want.x),
        Math.abs(got.y - want.y),
        Math.abs(got.w - want.w),
        Math.abs(got.h - want.h),
      );
      if (d > 2) off.push(`${got.id}: got ${JSON.stringify(got)} want ${JSON.stringify(want)}`);
    }
    return { count: rects.length, expected: expected.size, off };
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
