/**
 * The screenshot pixel cap (issue 13, point 8), on real Chromium: width × height × scale² over
 * `limits.max_screenshot_pixels` is `payload_too_large` before anything is rendered (the browser is untouched),
 * or, with `overflow: "clip"`, the top of the page that fits.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserKind } from '../../../../src/workers/browser/index.js';
import { failure } from '../../../helpers/failure.js';
import { runTask, startKind } from '../../../fixtures/browser/kind.js';

const TALL =
  '<title>tall</title><body style="margin:0"><div style="height:30000px;background:linear-gradient(red,blue)"></div></body>';
let kind: BrowserKind;

beforeAll(async () => {
  kind = await startKind([], { pool_size: 1, limits: { max_screenshot_pixels: 4_000_000 } });
});
afterAll(async () => {
  await kind?.stop?.();
});

describe('screenshot pixel cap', () => {
  it('refuses a 30 000 px full page at scale 4 before capturing; the browser is untouched', async () => {
    const pid = kind.pool!.pids()[0];
    const err = await failure(
      runTask(kind, 'screenshot', {
        html: TALL,
        options: { fullPage: true, deviceScaleFactor: 4, viewport: { width: 800, height: 600 } },
      }),
    );
    expect(err.code).toBe('payload_too_large');
    expect(err.details).toMatchObject({ width: 800, height: 30000, scale: 4, limit: 4_000_000 });
    expect(kind.pool!.pids()).toEqual([pid]);
    expect(kind.pool!.stats.crashes).toBe(0);
  });

  it('captures the top that fits with overflow "clip", and says so', async () => {
    const r = await runTask(kind, 'screenshot', {
      html: TALL,
      options: {
        fullPage: true,
        deviceScaleFactor: 2,
        viewport: { width: 800, height: 600 },
        overflow: 'clip',
      },
    });
    const out = r.output as {
      width: number;
      height: number;
      clipped: { width: number; height: number; fullHeight: number };
    };
    expect(out.clipped).toMatchObject({ width: 800, fullHeight: 30000 });
    expect(out.clipped.height).toBeLessThan(30000);
    expect(out.width).toBe(1600);
    expect(out.height).toBe(out.clipped.height * 2);
    expect(out.width * out.height).toBeLessThanOrEqual(4_000_000);
  });

  it('caps the viewport, a clip and one element the same way', async () => {
    const vp = await failure(
      runTask(kind, 'screenshot', {
        html: '<p>x</p>',
        options: { viewport: { width: 2000, height: 2000 }, deviceScaleFactor: 2 },
      }),
    );
    expect(vp.code).toBe('payload_too_large');
    const clip = await failure(
      runTask(kind, 'screenshot', {
        html: TALL,
        options: { clip: { x: 0, y: 0, width: 4000, height: 4000 } },
      }),
    );
    expect(clip.code).toBe('payload_too_large');
    const el = await failure(
      runTask(kind, 'screenshot', {
        html: '<div id="big" style="width:3000px;height:3000px;background:red"></div>',
        selector: '#big',
      }),
    );
    expect(el.code).toBe('payload_too_large');
    const ok = await runTask(kind, 'screenshot', {
      html: TALL,
      options: { viewport: { width: 1280, height: 720 } },
    });
    expect(ok.output).toMatchObject({ width: 1280, height: 720 });
  });
});

describe('the default cap, sized to the memory limit', () => {
  it('lets four concurrent full-page shots of a 30 000 px page (clipped at the cap) all succeed on 3 × 512 MB', async () => {
    const pool = await startKind([], { pool_size: 3 });
    try {
      const cap = pool.options.limits.max_screenshot_pixels;
      expect(cap).toBe((512 * 1024 * 1024) / 64);
      const shots = await Promise.all(
        [0, 1, 2, 3].map(() =>
          runTask(
            pool,
            'screenshot',
            {
              html: TALL,
              options: { fullPage: true, overflow: 'clip', viewport: { width: 1280, height: 720 } },
            },
            120_000,
          ),
        ),
      );
      for (const s of shots) {
        const out = s.output as { width: number; height: number; clipped: { height: number } };
        expect(out.width).toBe(1280);
        expect(out.width * out.height).toBeLessThanOrEqual(cap);
      }
      expect(pool.pool!.stats.crashes).toBe(0);
    } finally {
      await pool.stop!();
    }
  }, 180_000);
});
