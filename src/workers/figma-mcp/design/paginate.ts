/**
 * Bounded answers with a cursor. The simplified tree is walked depth-first and cut into pages of at most
 * `budget` characters; a page is a list of fragments (subtrees), each fragment root saying which `parentId`
 * it hangs under, and carries only the shared styles its nodes use, so every page stands on its own. The
 * cursor is opaque to callers and bound to the request and the file version it was cut from.
 */
import { FleetError } from '../../../protocol/errors.js';
import type { SimpleNode, SimplifiedDesign } from './simplify.js';

export interface DesignPage {
  nodes: (SimpleNode & { parentId?: string })[];
  styles: Record<string, unknown>;
  page: { returnedNodes: number; totalNodes: number; nextCursor: string | null };
}

interface Entry {
  node: SimpleNode;
  parentId: string | undefined;
  size: number;
}

const flattened = new WeakMap<SimplifiedDesign, Entry[]>();

function flatten(roots: SimpleNode[]): Entry[] {
  const out: Entry[] = [];
  const walk = (n: SimpleNode, parentId: string | undefined) => {
    const { children, ...own } = n;
    out.push({ node: n, parentId, size: JSON.stringify(own).length + 16 });
    for (const c of children ?? []) walk(c, n.id);
  };
  for (const r of roots) walk(r, undefined);
  return out;
}

function styleRefs(node: SimpleNode, into: Set<string>): void {
  for (const v of [node.layout, node.fills, node.strokes, node.effects, node.textStyle]) {
    if (typeof v === 'string' && v.startsWith('$')) into.add(v.slice(1));
  }
}

export function paginate(
  design: SimplifiedDesign,
  start: number,
  budget: number,
  cursorFor: (next: number) => string,
): DesignPage {
  let entries = flattened.get(design);
  if (!entries) flattened.set(design, (entries = flatten(design.nodes)));
  if (start < 0 || (start >= entries.length && entries.length > 0))
    throw new FleetError('invalid_payload', 'cursor: points past the end of the design');
  let used = 0;
  let end = start;
  const refs = new Set<string>();
  while (end < entries.length) {
    const e = entries[end]!;
    const extra = new Set<string>();
    styleRefs(e.node, extra);
    let styleCost = 0;
    for (const r of extra)
      if (!refs.has(r)) styleCost += JSON.stringify(design.styles[r] ?? null).length + r.length + 6;
    if (end > start && used + e.size + styleCost > budget) break;
    used += e.size + styleCost;
    for (const r of extra) refs.add(r);
    end++;
  }
  const clones = new Map<string, SimpleNode & { parentId?: string }>();
  const roots: (SimpleNode & { parentId?: string })[] = [];
  for (let i = start; i < end; i++) {
    const { node, parentId } = entries[i]!;
    const { children, ...own } = node;
    const clone: SimpleNode & { parentId?: string } = { ...own };
    if (children?.length) clone.children = [];
    clones.set(node.id, clone);
    const parent = parentId ? clones.get(parentId) : undefined;
    if (parent) parent.children!.push(clone);
    else roots.push(parentId ? { ...clone, parentId } : clone);
    if (parentId && !parent) clones.set(node.id, roots[roots.length - 1]!);
  }
  // Children left for the next page: say so, so a reader knows the subtree continues.
  for (const c of clones.values()) if (c.children && c.children.length === 0) delete c.children;
  const styles: Record<string, unknown> = {};
  for (const r of [...refs].sort()) styles[r] = design.styles[r];
  return {
    nodes: roots,
    styles,
    page: {
      returnedNodes: end - start,
      totalNodes: entries.length,
      nextCursor: end < entries.length ? cursorFor(end) : null,
    },
  };
}

export interface CursorState {
  /** Index of the next node. */
  i: number;
  /** File version the cursor was cut from. */
  v: string;
  /** Fingerprint of the request. */
  f: string;
}

export function encodeCursor(state: CursorState): string {
  return Buffer.from(JSON.stringify(state)).toString('base64url');
}

export function decodeCursor(cursor: string, fingerprint: string): CursorState {
  let state: unknown;
  try {
    state = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new FleetError('invalid_payload', 'cursor: not a cursor this tool issued');
  }
  const s = state as Partial<CursorState>;
  if (
    typeof s.i !== 'number' ||
    typeof s.v !== 'string' ||
    typeof s.f !== 'string' ||
    !Number.isInteger(s.i)
  ) {
    throw new FleetError('invalid_payload', 'cursor: not a cursor this tool issued');
  }
  if (s.f !== fingerprint)
    throw new FleetError(
      'invalid_payload',
      'cursor: it belongs to a different request (same file, nodes and depth are needed)',
    );
  return s as CursorState;
}
