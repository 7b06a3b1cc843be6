/**
 * The tools: one definition each (name, capability, description written for an LLM choosing among them,
 * zod input schema, run). The execution core runs them for every door; nothing here knows whether a call
 * came from the manager, an MCP client over HTTP or one over stdio.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Node } from '@figma/rest-api-spec';
import { z } from 'zod';
import { FleetError } from '../../../protocol/errors.js';
import type { Artifact } from '../../common/worker-kind.js';
import type { CallOptions, FigmaClient, ImageFormat } from '../client/figma-client.js';
import { parseFigmaRef, resolveTarget } from '../client/figma-ref.js';
import { analyzeDesign } from '../design/analyze.js';
import { generateCode } from '../design/codegen.js';
import { outline } from '../design/outline.js';
import { decodeCursor, encodeCursor, paginate } from '../design/paginate.js';
import {
  simplify,
  type SimplifiedDesign,
  type SimplifyContext,
  type SimplifyOptions,
} from '../design/simplify.js';
import type { FigmaOptions } from '../options.js';
import { guardedDir, safeFileName } from './path-guard.js';

export const CAPABILITIES = ['figma-design', 'ui-generation', 'asset-export', 'design-analysis'] as const;
export type Capability = (typeof CAPABILITIES)[number];

export interface ToolContext extends CallOptions {
  client: FigmaClient;
  options: FigmaOptions;
  workspace: string;
  progress(percent: number, message: string): void;
}

export interface ToolResult {
  output: Record<string, unknown>;
  artifacts?: Artifact[];
}

export interface ToolDef<S extends z.ZodObject = z.ZodObject> {
  name: string;
  title: string;
  capability: Capability;
  description: string;
  input: S;
  /** The shape of `output` (MCP `outputSchema`; clients validate `structuredContent` against it). */
  output: z.ZodObject;
  run(args: z.output<S>, ctx: ToolContext): Promise<ToolResult>;
}

function tool<S extends z.ZodObject>(def: ToolDef<S>): ToolDef<S> {
  return def;
}

const file = z
  .string()
  .min(1)
  .max(2048)
  .describe('A Figma file URL (https://www.figma.com/design/<key>/...?node-id=1-2) or a bare file key');
const nodeId = z
  .string()
  .min(1)
  .max(1000)
  .describe('A node id, as 1:2 or 1-2 (instance sublayers: I1:2;3:4)');
const nodeIds = z.array(nodeId).max(500);
const outDir = z
  .string()
  .min(1)
  .max(500)
  .optional()
  .describe('Write files here (relative to the workspace) instead of returning bytes');

// ---- output shapes (loose: the documented fields are guaranteed, more may be added) ---------------------

const fileInfo = z.looseObject({
  key: z.string().describe('The file key'),
  name: z.string(),
  version: z.string().optional().describe('The file version the answer was read from'),
});
const box4 = z.tuple([z.number(), z.number(), z.number(), z.number()]);
const fleetPage = z.looseObject({
  returnedNodes: z.number().int(),
  totalNodes: z.number().int(),
  nextCursor: z.string().nullable().describe('Pass as `cursor` for the next page; null on the last one'),
});
const hiddenOmitted = z
  .number()
  .int()
  .optional()
  .describe('Hidden layers left out (ask again with include_hidden: true to see them)');
const exported = {
  assets: z
    .array(z.looseObject({ name: z.string(), contentType: z.string(), bytes: z.number().int() }))
    .optional()
    .describe('What came back as content (MCP) or artifacts (task protocol)'),
  directory: z.string().optional().describe('Where the files were written (with out_dir)'),
  files: z
    .array(z.looseObject({ file: z.string(), contentType: z.string(), bytes: z.number().int() }))
    .optional(),
};
const includeHidden = z
  .boolean()
  .default(false)
  .describe(
    'Also return layers hidden in Figma (visible: false), marked `visible: false`. Default: they and their subtrees are left out, as nobody sees them',
  );

// ---- figma-design --------------------------------------------------------------------------------------

const listProjects = tool({
  name: 'figma_list_projects',
  title: 'List team projects',
  capability: 'figma-design',
  description:
    "List the projects of a Figma team (id and name). Use first when you do not know which file to look at; then list a project's files. team_id defaults to the configured team.",
  input: z.object({
    team_id: z
      .string()
      .min(1)
      .max(64)
      .regex(/^\d+$/, 'a team id is digits')
      .optional()
      .describe('The team id (digits, from figma.com/files/team/<id>); default: the configured team'),
  }),
  output: z.looseObject({
    team: z.string().optional(),
    teamId: z.string(),
    projects: z.array(z.looseObject({ id: z.string(), name: z.string() })),
  }),
  async run(args, ctx) {
    const teamId = args.team_id ?? ctx.client.defaultTeamId;
    if (!teamId)
      throw new FleetError('invalid_payload', 'team_id: none given and FIGMA_TEAM_ID is not configured');
    const res = await ctx.client.getTeamProjects(teamId, ctx);
    return {
      output: {
        team: res.name,
        teamId,
        projects: res.projects.map((p) => ({ id: String(p.id), name: p.name })),
      },
    };
  },
});

const listFiles = tool({
  name: 'figma_list_files',
  title: 'List project files',
  capability: 'figma-design',
  description:
    'List the files of a Figma project (key, name, last modified). The key is what the other tools take as `file`.',
  input: z.object({
    project_id: z
      .string()
      .min(1)
      .max(64)
      .regex(/^\d+$/, 'a project id is digits')
      .describe('The project id, as figma_list_projects returns it'),
  }),
  output: z.looseObject({
    project: z.string().optional(),
    files: z.array(z.looseObject({ key: z.string(), name: z.string(), lastModified: z.string().optional() })),
  }),
  async run(args, ctx) {
    const res = await ctx.client.getProjectFiles(args.project_id, ctx);
    return {
      output: {
        project: res.name,
        files: res.files.map((f) => ({ key: f.key, name: f.name, lastModified: f.last_modified })),
      },
    };
  },
});

const getOutline = tool({
  name: 'figma_get_outline',
  title: 'Outline a file or node',
  capability: 'figma-design',
  description:
    'Cheap overview of a Figma file or node: one entry per layer (id, name, type, box [x, y, w, h], child count), depth-first, paged; hidden layers left out unless include_hidden. Use it to find the node ids of the frames you care about before asking for their design.',
  input: z.object({
    file,
    node_id: nodeId
      .optional()
      .describe('Outline under this node instead of the whole file (a node-id in the URL counts too)'),
    depth: z
      .number()
      .int()
      .min(1)
      .max(20)
      .default(2)
      .describe('Levels below the start to include (file: 1 = pages, 2 = top-level frames)'),
    limit: z.number().int().min(1).max(2000).default(300).describe('Layers per page, 1 to 2000'),
    cursor: z.string().max(200).optional().describe('nextCursor from the previous page'),
    include_hidden: includeHidden,
  }),
  output: z.looseObject({
    file: fileInfo,
    nodes: z.array(
      z.looseObject({
        id: z.string(),
        name: z.string(),
        type: z.string(),
        depth: z.number().int(),
        box: box4.optional().describe('[x, y, width, height], absolute'),
        children: z.number().int().optional(),
        hidden: z.literal(true).optional(),
      }),
    ),
    page: z.looseObject({
      total: z.number().int(),
      returned: z.number().int(),
      nextCursor: z.string().nullable(),
    }),
    hiddenOmitted,
  }),
  async run(args, ctx) {
    const { fileKey, nodeIds: ids } = resolveTarget(args.file, args.node_id ? [args.node_id] : undefined);
    ctx.progress(10, 'fetching the layer tree');
    let roots: Node[];
    let name: string;
    if (ids.length) {
      const res = await ctx.client.getFileNodes(fileKey, ids, { depth: args.depth }, ctx);
      const entry = res.nodes[ids[0]!];
      if (!entry) throw new FleetError('figma_not_found', `file ${fileKey} has no node ${ids[0]}`);
      roots = [entry.document];
      name = res.name;
    } else {
      const res = await ctx.client.getFile(fileKey, { depth: args.depth }, ctx);
      roots = [res.document];
      name = res.name;
    }
    const all = outline(roots, args.depth, { includeHidden: args.include_hidden });
    const offset = args.cursor ? Number.parseInt(args.cursor, 10) : 0;
    if (!Number.isInteger(offset) || offset < 0 || offset > all.length)
      throw new FleetError('invalid_payload', 'cursor: not a cursor this tool issued');
    const page = all.slice(offset, offset + args.limit);
    const next = offset + page.length < all.length ? String(offset + page.length) : null;
    return {
      output: {
        file: { key: fileKey, name },
        nodes: page,
        page: { total: all.length, returned: page.length, nextCursor: next },
        ...(all.hiddenOmitted ? { hiddenOmitted: all.hiddenOmitted } : {}),
      },
    };
  },
});

const getDesign = tool({
  name: 'figma_get_design',
  title: 'Get the design of nodes',
  capability: 'figma-design',
  description:
    'The design of Figma nodes as a compact tree made for reading and building UI: boxes, auto layout as CSS flex (direction, gap, padding, justify/align), sizing (fixed/hug/fill), text with its base style plus `runs` (ranges styled differently: bold, colour, link…) and list `lines`, fills, strokes, effects, radii, components (property definitions of a set, the values of a variant or an instance). Style names ("$fill-brand-primary") appear only where the node uses that Figma style. Hidden layers are left out (count in hiddenOmitted) unless include_hidden. Repeated values are hoisted into `styles` and referenced as "$name". Answers are bounded; follow page.nextCursor for the rest. Prefer specific node ids (from figma_get_outline or the URL) over whole files.',
  input: z.object({
    file,
    node_ids: nodeIds
      .optional()
      .describe('Nodes to describe (default: the node-id in the URL, else the whole file)'),
    depth: z
      .number()
      .int()
      .min(1)
      .max(50)
      .optional()
      .describe('Levels below each node to include (default: all)'),
    max_chars: z
      .number()
      .int()
      .min(2000)
      .max(500_000)
      .optional()
      .describe('Size budget of this answer in characters'),
    cursor: z.string().max(500).optional().describe('nextCursor from the previous page'),
    include_hidden: includeHidden,
  }),
  output: z.looseObject({
    file: fileInfo,
    missing: z.array(z.string()).optional().describe('Asked-for node ids the file does not have'),
    nodes: z
      .array(
        z.looseObject({
          id: z.string(),
          name: z.string(),
          type: z.string(),
          parentId: z.string().optional(),
        }),
      )
      .describe('Simplified subtrees; a fragment continuing from an earlier page names its parentId'),
    styles: z.record(z.string(), z.unknown()).describe('Shared values the nodes refer to as "$name"'),
    page: fleetPage,
    hiddenOmitted,
  }),
  async run(args, ctx) {
    const { fileKey, nodeIds: ids } = resolveTarget(args.file, args.node_ids);
    const fingerprint = `${fileKey}|${ids.join(',')}|${args.depth ?? ''}|${args.include_hidden ? 'h' : ''}`;
    const state = args.cursor ? decodeCursor(args.cursor, fingerprint) : undefined;
    ctx.progress(10, 'fetching nodes');
    const loaded = await loadRoots(ctx, fileKey, ids, args.depth);
    if (state && state.v !== loaded.version)
      throw new FleetError(
        'invalid_payload',
        'cursor: the file changed since this cursor was issued; start again without it',
      );
    ctx.progress(60, 'simplifying');
    const design = simplifyCached(loaded, fingerprint, { includeHidden: args.include_hidden });
    const budget = args.max_chars ?? ctx.options.max_output_chars;
    const page = paginate(design, state?.i ?? 0, budget, (i) =>
      encodeCursor({ i, v: loaded.version, f: fingerprint }),
    );
    return {
      output: {
        file: { key: fileKey, name: loaded.name, version: loaded.version },
        ...(loaded.missing.length ? { missing: loaded.missing } : {}),
        nodes: page.nodes,
        styles: page.styles,
        page: page.page,
        ...(design.hiddenOmitted ? { hiddenOmitted: design.hiddenOmitted } : {}),
      },
    };
  },
});

// ---- ui-generation -------------------------------------------------------------------------------------

const generate = tool({
  name: 'figma_generate_code',
  title: 'Generate UI code from a node',
  capability: 'ui-generation',
  description:
    'Deterministic front-end code for one Figma node (a frame or component): HTML + CSS and/or a React (TSX) component with Tailwind classes. Auto layout becomes flexbox, shared styles become CSS variables, text keeps its style runs, links and lists, a component set becomes one class per variant (HTML) and one component with variant/boolean/text props (React), hidden layers are left out, image fills and vectors become references to asset files (list in `assets`; fetch them with figma_export_assets / figma_export_image_fills). No AI involved: same design, same code.',
  input: z.object({
    file,
    node_id: nodeId
      .optional()
      .describe('The frame or component to generate (default: the node-id in the URL)'),
    framework: z
      .enum(['html', 'react', 'both'])
      .default('both')
      .describe('html: a standalone HTML page with CSS; react: a TSX component with Tailwind classes; both'),
    asset_dir: z
      .string()
      .max(200)
      .regex(/^[A-Za-z0-9_./-]+$/, 'letters, digits, _ . / - only')
      .default('assets')
      .describe('Relative path the generated code uses for asset files'),
  }),
  output: z.looseObject({
    file: fileInfo,
    nodeId: z.string(),
    html: z.string().optional(),
    css: z.string().optional(),
    react: z.string().optional(),
    tokensCss: z.string().describe('CSS custom properties for the shared styles, to include once'),
    assets: z.array(
      z.looseObject({
        file: z.string(),
        kind: z.enum(['image-fill', 'vector']),
        ref: z.string().describe('imageRef (figma_export_image_fills) or node id (figma_export_assets)'),
        format: z.enum(['png', 'svg']),
      }),
    ),
    componentName: z.string(),
  }),
  async run(args, ctx) {
    const { fileKey, nodeIds: ids } = resolveTarget(args.file, args.node_id ? [args.node_id] : undefined);
    if (ids.length !== 1)
      throw new FleetError('invalid_payload', 'node_id: give one node (or a URL with node-id)');
    ctx.progress(10, 'fetching the node');
    const loaded = await loadRoots(ctx, fileKey, ids, undefined);
    if (!loaded.roots.length)
      throw new FleetError('figma_not_found', `file ${fileKey} has no node ${ids[0]}`);
    ctx.progress(60, 'generating code');
    // Hidden layers come along so a boolean property can show them in React; the emitter drops the rest.
    const design = simplifyCached(loaded, `${fileKey}|${ids[0]}||h`, { includeHidden: true });
    const code = generateCode(design, { framework: args.framework, assetDir: args.asset_dir });
    return {
      output: { file: { key: fileKey, name: loaded.name, version: loaded.version }, nodeId: ids[0], ...code },
    };
  },
});

// ---- asset-export --------------------------------------------------------------------------------------

const CONTENT_TYPES: Record<ImageFormat, string> = {
  png: 'image/png',
  jpg: 'image/jpeg',
  svg: 'image/svg+xml',
  pdf: 'application/pdf',
};

async function deliver(
  ctx: ToolContext,
  items: { name: string; data: Buffer; contentType: string; source: Record<string, unknown> }[],
  outDir: string | undefined,
): Promise<ToolResult> {
  if (outDir !== undefined) {
    const dir = await guardedDir(ctx.workspace, outDir);
    const files = [];
    for (const it of items) {
      const path = join(dir, it.name);
      await writeFile(path, it.data);
      files.push({ ...it.source, file: path, contentType: it.contentType, bytes: it.data.length });
    }
    return { output: { directory: dir, files } };
  }
  return {
    output: {
      assets: items.map((it) => ({
        ...it.source,
        name: it.name,
        contentType: it.contentType,
        bytes: it.data.length,
      })),
    },
    artifacts: items.map((it) => ({ name: it.name, contentType: it.contentType, data: it.data })),
  };
}

async function fetchAll<T>(
  items: T[],
  ctx: ToolContext,
  label: string,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let done = 0;
  let next = 0;
  const lanes = Array.from({ length: Math.min(4, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++]!;
      await work(item);
      done++;
      ctx.progress(20 + Math.round((done / items.length) * 75), `${label} ${done}/${items.length}`);
    }
  });
  await Promise.all(lanes);
}

const exportAssets = tool({
  name: 'figma_export_assets',
  title: 'Export nodes as images',
  capability: 'asset-export',
  description:
    'Render Figma nodes to PNG, JPG, SVG or PDF at a scale and return the bytes (as artifacts/embedded content), or write them into out_dir inside the workspace. Nodes Figma cannot render (for example hidden ones) are listed in `failed`.',
  input: z.object({
    file,
    node_ids: nodeIds.optional().describe('Nodes to render (default: the node-id in the URL)'),
    format: z.enum(['png', 'jpg', 'svg', 'pdf']).default('png').describe('Image format of the renders'),
    scale: z.number().min(0.01).max(4).default(1).describe('Raster scale, 0.01 to 4 (png/jpg only)'),
    out_dir: outDir,
  }),
  output: z.looseObject({
    ...exported,
    failed: z.array(z.string()).optional().describe('Nodes Figma could not render (hidden, empty)'),
  }),
  async run(args, ctx) {
    const { fileKey, nodeIds: ids } = resolveTarget(args.file, args.node_ids);
    if (!ids.length)
      throw new FleetError('invalid_payload', 'node_ids: give at least one node (or a URL with node-id)');
    ctx.progress(5, 'asking Figma to render');
    const urls = await ctx.client.getImages(fileKey, ids, { format: args.format, scale: args.scale }, ctx);
    const failed = ids.filter((id) => !urls[id]);
    const items: { name: string; data: Buffer; contentType: string; source: Record<string, unknown> }[] = [];
    let total = 0;
    await fetchAll(
      ids.filter((id) => urls[id]),
      ctx,
      'downloaded',
      async (id) => {
        const { data } = await ctx.client.download(urls[id]!, ctx, ctx.options.max_asset_bytes);
        total += data.length;
        if (total > ctx.options.max_asset_bytes)
          throw new FleetError(
            'payload_too_large',
            `the export is over ${ctx.options.max_asset_bytes} bytes; export fewer nodes or a smaller scale`,
          );
        items.push({
          name: safeFileName(id, args.format),
          data,
          contentType: CONTENT_TYPES[args.format],
          source: { nodeId: id, format: args.format, scale: args.scale },
        });
      },
    );
    if (!items.length && failed.length)
      throw new FleetError('figma_not_found', `Figma rendered none of the nodes (${failed.join(', ')})`, {
        details: { failed },
      });
    items.sort((a, b) => ids.indexOf(String(a.source.nodeId)) - ids.indexOf(String(b.source.nodeId)));
    const out = await deliver(ctx, items, args.out_dir);
    return { ...out, output: { ...out.output, ...(failed.length ? { failed } : {}) } };
  },
});

const exportFills = tool({
  name: 'figma_export_image_fills',
  title: 'Export image fills',
  capability: 'asset-export',
  description:
    'Download the original images used as image fills in a Figma file (by imageRef, as seen in figma_get_design fills), returned as bytes or written into out_dir inside the workspace.',
  input: z.object({
    file,
    image_refs: z
      .array(z.string().min(1).max(200))
      .max(500)
      .optional()
      .describe('Only these imageRefs (default: all in the file)'),
    out_dir: outDir,
  }),
  output: z.looseObject({
    ...exported,
    missing: z.array(z.string()).optional().describe('Asked-for imageRefs the file does not have'),
  }),
  async run(args, ctx) {
    const { fileKey } = parseFigmaRef(args.file);
    ctx.progress(5, 'listing image fills');
    const all = await ctx.client.getImageFills(fileKey, ctx);
    const refs = args.image_refs ?? Object.keys(all);
    const missing = refs.filter((r) => !all[r]);
    const items: { name: string; data: Buffer; contentType: string; source: Record<string, unknown> }[] = [];
    let total = 0;
    await fetchAll(
      refs.filter((r) => all[r]),
      ctx,
      'downloaded',
      async (ref) => {
        const { data, contentType } = await ctx.client.download(all[ref]!, ctx, ctx.options.max_asset_bytes);
        total += data.length;
        if (total > ctx.options.max_asset_bytes)
          throw new FleetError(
            'payload_too_large',
            `the export is over ${ctx.options.max_asset_bytes} bytes`,
          );
        const ext = contentType === 'image/jpeg' ? 'jpg' : contentType === 'image/gif' ? 'gif' : 'png';
        items.push({ name: safeFileName(ref, ext), data, contentType, source: { imageRef: ref } });
      },
    );
    items.sort((a, b) => refs.indexOf(String(a.source.imageRef)) - refs.indexOf(String(b.source.imageRef)));
    const out = await deliver(ctx, items, args.out_dir);
    return { ...out, output: { ...out.output, ...(missing.length ? { missing } : {}) } };
  },
});

// ---- design-analysis -----------------------------------------------------------------------------------

const analyze = tool({
  name: 'figma_analyze_design',
  title: 'Analyze a design',
  capability: 'design-analysis',
  description:
    'Audit a Figma file or nodes (hidden layers not counted unless include_hidden): design-token inventory (colours incl. gradient stops and styled text runs, typography incl. run styles, gradients, spacing, radii, shadows, with named styles and bound variables; local variables when the plan allows), component and instance usage, WCAG contrast failures of text over its background, inconsistent spacing/radii/font sizes, and detached styles. Returns structured JSON plus a short `summary`.',
  input: z.object({
    file,
    node_ids: nodeIds
      .optional()
      .describe('Analyse these nodes (default: the node-id in the URL, else the whole file)'),
    include_variables: z
      .boolean()
      .default(true)
      .describe('Also read local variables (Enterprise plans; otherwise reported as unavailable)'),
    grid: z
      .number()
      .int()
      .min(1)
      .max(64)
      .default(4)
      .describe('Spacing grid in px; spacing off this grid is flagged'),
    include_hidden: includeHidden,
  }),
  output: z.looseObject({
    file: fileInfo,
    missing: z.array(z.string()).optional(),
    tokens: z.looseObject({
      colors: z.array(z.looseObject({ value: z.union([z.string(), z.number()]), count: z.number().int() })),
      typography: z.array(
        z.looseObject({ value: z.union([z.string(), z.number()]), count: z.number().int() }),
      ),
      gradients: z.array(
        z.looseObject({ value: z.union([z.string(), z.number()]), count: z.number().int() }),
      ),
    }),
    variables: z.looseObject({ available: z.boolean() }),
    components: z.looseObject({ defined: z.array(z.looseObject({})), usage: z.array(z.looseObject({})) }),
    contrast: z.looseObject({ checked: z.number().int(), failing: z.array(z.looseObject({})) }),
    inconsistencies: z.looseObject({}),
    detachedStyles: z.array(z.looseObject({ nodeId: z.string(), matchesStyle: z.string() })),
    summary: z.string().describe('A few lines for a human'),
  }),
  async run(args, ctx) {
    const { fileKey, nodeIds: ids } = resolveTarget(args.file, args.node_ids);
    ctx.progress(10, 'fetching the design');
    const [loaded, variables] = await Promise.all([
      loadRoots(ctx, fileKey, ids, undefined),
      args.include_variables
        ? ctx.client.getLocalVariables(fileKey, ctx)
        : Promise.resolve({ available: false as const, reason: 'not requested', code: 'skipped' }),
    ]);
    ctx.progress(70, 'analysing');
    const report = analyzeDesign({
      roots: loaded.roots,
      styles: loaded.context.styles ?? {},
      components: loaded.context.components ?? {},
      componentSets: loaded.context.componentSets ?? {},
      variables: variables.available
        ? {
            available: true,
            variables: variables.meta.variables,
            collections: variables.meta.variableCollections,
          }
        : { available: false, reason: variables.reason },
      grid: args.grid,
      includeHidden: args.include_hidden,
    });
    return {
      output: {
        file: { key: fileKey, name: loaded.name, version: loaded.version },
        ...(loaded.missing.length ? { missing: loaded.missing } : {}),
        ...report,
      },
    };
  },
});

/**
 * Simplified designs, memoised per cached Figma answer: the client hands out the same object for as long
 * as its cache entry lives (same request, same file version), so a repeated call skips the simplifier and
 * a new version simply misses.
 */
const simplified = new WeakMap<object, Map<string, SimplifiedDesign>>();

function simplifyCached(loaded: Loaded, key: string, options: SimplifyOptions = {}): SimplifiedDesign {
  let perAnswer = simplified.get(loaded.answer);
  if (!perAnswer) simplified.set(loaded.answer, (perAnswer = new Map()));
  let design = perAnswer.get(key);
  if (!design) {
    design = simplify(loaded.roots, loaded.context, options);
    perAnswer.set(key, design);
  }
  return design;
}

interface Loaded {
  roots: Node[];
  context: Required<SimplifyContext>;
  name: string;
  version: string;
  missing: string[];
  answer: object;
}

/** Nodes by id (each with its own components and styles merged), or the whole document's pages. */
async function loadRoots(
  ctx: ToolContext,
  fileKey: string,
  ids: string[],
  depth: number | undefined,
): Promise<Loaded> {
  if (ids.length === 0) {
    const res = await ctx.client.getFile(fileKey, depth !== undefined ? { depth: depth + 1 } : {}, ctx);
    return {
      roots: res.document.children,
      context: { styles: res.styles, components: res.components, componentSets: res.componentSets },
      name: res.name,
      version: res.version,
      missing: [],
      answer: res,
    };
  }
  const res = await ctx.client.getFileNodes(fileKey, ids, depth !== undefined ? { depth } : {}, ctx);
  const context: Required<SimplifyContext> = { styles: {}, components: {}, componentSets: {} };
  const roots: Node[] = [];
  const missing: string[] = [];
  for (const id of ids) {
    const entry = res.nodes[id];
    if (!entry) {
      missing.push(id);
      continue;
    }
    roots.push(entry.document);
    Object.assign(context.styles, entry.styles);
    Object.assign(context.components, entry.components);
    Object.assign(context.componentSets, entry.componentSets);
  }
  if (!roots.length)
    throw new FleetError('figma_not_found', `file ${fileKey} has none of the nodes ${ids.join(', ')}`, {
      details: { missing },
    });
  return { roots, context, name: res.name, version: res.version, missing, answer: res };
}

export const TOOLS: ToolDef[] = [
  listProjects,
  listFiles,
  getOutline,
  getDesign,
  generate,
  exportAssets,
  exportFills,
  analyze,
];
