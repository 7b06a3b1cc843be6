/** Box comparison between Figma's absoluteBoundingBox and what Chromium lays out for the generated HTML. */
import type { Node } from '@figma/rest-api-spec';
import type { Page } from 'playwright-core';

export type Box = { x: number; y: number; w: number; h: number };

/** Every visible node's box relative to the root (hidden layers are not drawn, so not compared). */
export function figmaBoxes(root: Node): Map<string, Box> {
  const out = new Map<string, Box>();
  const origin = (root as { absoluteBoundingBox: { x: number; y: number } }).absoluteBoundingBox;
  const walk = (n: Node) => {
    if (n.visible === false) return;
    const b = (n as { absoluteBoundingBox?: { x: number; y: number; width: number; height: number } | null })
      .absoluteBoundingBox;
    if (b) out.set(n.id, { x: b.x - origin.x, y: b.y - origin.y, w: b.width, h: b.height });
    for (const c of (n as { children?: Node[] }).children ?? []) walk(c);
  };
  walk(root);
  return out;
}

/** Loads the HTML with every request but data: URLs refused (boxes must not depend on assets or fonts). */
export async function loadHtml(page: Page, html: string): Promise<void> {
  await page.route('**/*', (route) =>
    route.request().url().startsWith('data:') ? route.continue() : route.abort(),
  );
  await page.setContent(html, { waitUntil: 'load' });
}

/** Elements with data-figma-id whose box differs from Figma's by more than `tolerance` px. */
export async function boxesOff(
  page: Page,
  expected: Map<string, Box>,
  tolerance = 2,
): Promise<{ count: number; off: string[] }> {
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
    if (d > tolerance) off.push(`${got.id}: got ${JSON.stringify(got)} want ${JSON.stringify(want)}`);
  }
  return { count: rects.length, off };
}
