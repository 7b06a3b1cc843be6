import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FleetError } from '../../../../src/protocol/errors.js';
import { DESIGN_SYSTEM_KEY, MARKETING_KEY } from '../../../../src/workers/figma-mcp/fake/fixtures/index.js';
import { pngSize } from '../../../../src/workers/figma-mcp/fake/image-bytes.js';
import { call, rig, type Rig } from './setup.js';

let r: Rig;
beforeAll(async () => {
  r = await rig();
});
afterAll(() => r.close());

const url = (key: string, node?: string) =>
  `https://www.figma.com/design/${key}/Acme-Website${node ? `?node-id=${node}` : ''}`;

describe('figma-design tools', () => {
  it('lists the default team projects and a project files', async () => {
    const projects = await call(r.core, 'figma_list_projects', {});
    expect(projects.output.projects).toEqual([
      { id: '101', name: 'Website' },
      { id: '102', name: 'Design System' },
    ]);
    const files = await call(r.core, 'figma_list_files', { project_id: '101' });
    expect((files.output.files as { key: string }[])[0]!.key).toBe(MARKETING_KEY);
  });

  it('outlines a file by pages and top-level frames, and pages with a cursor', async () => {
    const res = await call(r.core, 'figma_get_outline', { file: MARKETING_KEY, depth: 2 });
    const nodes = res.output.nodes as { id: string; type: string; depth: number; box?: number[] }[];
    expect(nodes.filter((n) => n.type === 'CANVAS').map((n) => n.id)).toEqual(['0:1', '0:2']);
    expect(nodes.find((n) => n.id === '1:1')).toMatchObject({
      name: 'Landing Page',
      type: 'FRAME',
      depth: 2,
    });
    const paged = await call(r.core, 'figma_get_outline', {
      file: url(MARKETING_KEY, '1-1'),
      depth: 3,
      limit: 5,
    });
    expect((paged.output.nodes as unknown[]).length).toBe(5);
    const page = paged.output.page as { nextCursor: string; total: number };
    const next = await call(r.core, 'figma_get_outline', {
      file: url(MARKETING_KEY, '1-1'),
      depth: 3,
      limit: 5,
      cursor: page.nextCursor,
    });
    expect((next.output.nodes as { id: string }[])[0]!.id).not.toBe('1:1');
  });

  it('returns a simplified design with hoisted styles and flex layout', async () => {
    const res = await call(r.core, 'figma_get_design', { file: url(MARKETING_KEY, '1-1') });
    const root = (res.output.nodes as Record<string, unknown>[])[0]!;
    expect(root).toMatchObject({ id: '1:1', name: 'Landing Page', type: 'FRAME' });
    const styles = res.output.styles as Record<string, unknown>;
    expect(styles['fill-brand-primary']).toEqual(['#4f46e5']);
    expect(Object.values(styles)).toContainEqual(
      expect.objectContaining({ display: 'flex', flexDirection: 'column' }),
    );
    const text = JSON.stringify(res.output);
    expect(text).toContain('"text":"Build the web you want"');
    expect(text).toContain('"component":{"id":"20:1","name":"Type=Primary, State=Default","set":"Button"');
    expect(text.length).toBeLessThan(70_000);
  });

  it('bounds a large design and continues with the cursor until every node was returned once', async () => {
    const seen = new Set<string>();
    let cursor: string | undefined;
    let pages = 0;
    let total = 0;
    do {
      const res = await call(r.core, 'figma_get_design', {
        file: MARKETING_KEY,
        node_ids: ['2:1'],
        max_chars: 20_000,
        ...(cursor ? { cursor } : {}),
      });
      expect(JSON.stringify(res.output).length).toBeLessThan(26_000);
      const walk = (n: { id: string; children?: unknown[] }) => {
        expect(seen.has(n.id)).toBe(false);
        seen.add(n.id);
        for (const c of n.children ?? []) walk(c as { id: string });
      };
      for (const n of res.output.nodes as { id: string }[]) walk(n);
      const page = res.output.page as { nextCursor: string | null; totalNodes: number };
      total = page.totalNodes;
      cursor = page.nextCursor ?? undefined;
      pages++;
    } while (cursor && pages < 100);
    expect(pages).toBeGreaterThan(3);
    expect(seen.size).toBe(total);
  });

  it('reports unknown node ids as missing and a file without any as figma_not_found', async () => {
    const res = await call(r.core, 'figma_get_design', {
      file: MARKETING_KEY,
      node_ids: ['1:1', '99:99'],
      depth: 1,
    });
    expect(res.output.missing).toEqual(['99:99']);
    await expect(
      call(r.core, 'figma_get_design', { file: MARKETING_KEY, node_ids: ['99:99'] }),
    ).rejects.toMatchObject({ code: 'figma_not_found' });
    await expect(
      call(r.core, 'figma_get_design', { file: 'https://evil.example.com/design/abc' }),
    ).rejects.toMatchObject({ code: 'invalid_payload' });
    await expect(
      call(r.core, 'figma_get_design', { file: MARKETING_KEY, node_ids: ['<script>'] }),
    ).rejects.toMatchObject({ code: 'invalid_payload' });
  });
});

describe('ui-generation', () => {
  it('generates HTML, CSS and React with Tailwind from a node, deterministically', async () => {
    const a = await call(r.core, 'figma_generate_code', { file: url(MARKETING_KEY, '1-1') });
    const b = await call(r.core, 'figma_generate_code', { file: url(MARKETING_KEY, '1-1') });
    expect(a.output).toEqual(b.output);
    const out = a.output as {
      html: string;
      react: string;
      tokensCss: string;
      assets: { kind: string; ref: string }[];
    };
    expect(out.html).toContain('data-figma-id="1:1"');
    expect(out.html).toContain('flex-direction: column');
    expect(out.tokensCss).toContain('--fill-brand-primary: #4f46e5;');
    expect(out.react).toContain('export function LandingPage()');
    expect(out.react).toMatch(/className="[^"]*flex flex-col/);
    expect(out.assets).toContainEqual(
      expect.objectContaining({ kind: 'image-fill', ref: 'img0hero0000000000001' }),
    );
    expect(out.assets).toContainEqual(expect.objectContaining({ kind: 'vector', format: 'svg' }));
  });
});

describe('asset-export', () => {
  it('exports PNG bytes intact as artifacts at a scale, and null renders as failed', async () => {
    const res = await call(r.core, 'figma_export_assets', {
      file: MARKETING_KEY,
      node_ids: ['1:1', '1:901'],
      format: 'png',
      scale: 0.5,
    });
    expect(res.output.failed).toEqual(['1:901']);
    const art = res.artifacts![0]!;
    expect(art.contentType).toBe('image/png');
    expect(pngSize(art.data)).toEqual({ width: 720, height: expect.any(Number) });
    expect((res.output.assets as { bytes: number }[])[0]!.bytes).toBe(art.data.length);
  });

  it('exports SVG, PDF and JPG with their content types', async () => {
    for (const [format, type, magic] of [
      ['svg', 'image/svg+xml', '<svg'],
      ['pdf', 'application/pdf', '%PDF'],
      ['jpg', 'image/jpeg', '\xff\xd8'],
    ] as const) {
      const res = await call(r.core, 'figma_export_assets', {
        file: MARKETING_KEY,
        node_ids: ['1:1'],
        format,
      });
      expect(res.artifacts![0]!.contentType).toBe(type);
      expect(res.artifacts![0]!.data.subarray(0, magic.length).toString('latin1')).toBe(magic);
    }
  });

  it('writes files into a directory inside the workspace and refuses paths outside it', async () => {
    const res = await call(r.core, 'figma_export_image_fills', {
      file: MARKETING_KEY,
      out_dir: 'exports/fills',
    });
    const files = res.output.files as { file: string; bytes: number; contentType: string }[];
    expect(files).toHaveLength(2);
    const bytes = await readFile(files[0]!.file);
    expect(bytes.length).toBe(files[0]!.bytes);
    expect(files[0]!.file.startsWith(join(r.workspace, 'exports', 'fills'))).toBe(true);
    await expect(
      call(r.core, 'figma_export_assets', { file: MARKETING_KEY, node_ids: ['1:1'], out_dir: '../escape' }),
    ).rejects.toMatchObject({
      code: 'path_outside_workspace',
    });
    await expect(
      call(r.core, 'figma_export_assets', { file: MARKETING_KEY, node_ids: ['1:1'], out_dir: '/etc' }),
    ).rejects.toMatchObject({
      code: 'path_outside_workspace',
    });
  });
});

describe('design-analysis', () => {
  it('finds tokens, component usage, contrast failures, inconsistencies and detached styles', async () => {
    const res = await call(r.core, 'figma_analyze_design', { file: url(MARKETING_KEY, '1-1') });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a deep JSON report read by path
    const o = res.output as any;
    expect(o.tokens.colors[0].count).toBeGreaterThan(3);
    expect(o.tokens.namedStyles.map((s: { name: string }) => s.name)).toContain('Brand/Primary');
    expect(o.components.usage[0]).toMatchObject({ componentId: '20:1', set: 'Button', instances: 3 });
    expect(o.contrast.failing.map((f: { name: string }) => f.name)).toEqual(
      expect.arrayContaining(['Footer Privacy', 'Footer Terms', 'Footer Status']),
    );
    expect(o.inconsistencies.offGridSpacing).toContainEqual(expect.objectContaining({ value: 30 }));
    expect(o.inconsistencies.fontSizes).toContainEqual(expect.objectContaining({ value: 19, near: 20 }));
    expect(o.detachedStyles).toContainEqual(
      expect.objectContaining({ kind: 'fill', matchesStyle: 'Brand/Primary' }),
    );
    expect(o.variables).toMatchObject({ available: false });
    expect(o.summary).toMatch(/Contrast: 3 of \d+ text layers fail WCAG AA/);
  });

  it('reads variables on an Enterprise plan', async () => {
    const ent = await rig({}, { enterprise: true });
    try {
      const res = await call(ent.core, 'figma_analyze_design', { file: DESIGN_SYSTEM_KEY });
      // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a deep JSON report read by path
      const o = res.output as any;
      expect(o.variables.available).toBe(true);
      expect(o.variables.variables).toContainEqual(
        expect.objectContaining({ name: 'brand/500', value: '#4f46e5', uses: 1 }),
      );
      expect(o.components.defined).toHaveLength(4);
    } finally {
      await ent.close();
    }
  });

  it('validates arguments with field names', async () => {
    const err = await call(r.core, 'figma_analyze_design', { file: MARKETING_KEY, grid: 'x' }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FleetError);
    expect((err as FleetError).code).toBe('invalid_payload');
    expect((err as FleetError).message).toContain('grid');
  });
});
