/**
 * Callers name files and nodes the way they have them at hand: a pasted Figma URL (`/file/` or `/design/`,
 * `/proto/`, branch URLs, `?node-id=1-2`), a bare file key, or node ids in either spelling (`1:2` in the API,
 * `1-2` in URLs, instance sublayers joined with `;`). This turns all of them into the API's spelling, and
 * refuses anything else with `invalid_payload` before a request is made.
 */
import { FleetError } from '../../../protocol/errors.js';

const KEY_RE = /^[A-Za-z0-9]{10,128}$/;
const ID_PART_RE = /^I?-?\d+[:-]-?\d+$/;
const URL_PATH_RE =
  /^\/(?:file|design|proto|board|slides)\/([A-Za-z0-9]{10,128})(?:\/branch\/([A-Za-z0-9]{10,128}))?(?:\/|$)/;

export interface FigmaRef {
  fileKey: string;
  nodeId: string | undefined;
}

/** `1-2` → `1:2`; `I1-2;3-4` → `I1:2;3:4`. Throws on anything that is not a node id. */
export function normalizeNodeId(raw: string): string {
  const text = decodeURIComponent(raw.trim());
  if (text.length === 0 || text.length > 1000)
    throw new FleetError('invalid_payload', `node id "${raw.slice(0, 60)}" is not a Figma node id`);
  const parts = text.split(';');
  const out = parts.map((part) => {
    if (!ID_PART_RE.test(part))
      throw new FleetError(
        'invalid_payload',
        `node id "${text.slice(0, 60)}" is not a Figma node id (like 1:2 or 1-2)`,
      );
    // Only the separator between the two numbers becomes ':'; a leading minus stays a minus.
    return part.replace(/^(I?-?\d+)[:-]/, '$1:');
  });
  return out.join(';');
}

/** A file key, or a Figma URL (whose `node-id`, when present, is returned too). Branch URLs resolve to the branch key. */
export function parseFigmaRef(input: string): FigmaRef {
  const text = input.trim();
  if (KEY_RE.test(text)) return { fileKey: text, nodeId: undefined };
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new FleetError(
      'invalid_payload',
      `"${text.slice(0, 80)}" is neither a Figma file key nor a Figma URL`,
    );
  }
  const host = url.hostname.toLowerCase();
  if (url.protocol !== 'https:' || !(host === 'figma.com' || host.endsWith('.figma.com'))) {
    throw new FleetError(
      'invalid_payload',
      `"${url.origin}" is not a Figma URL (expected https://www.figma.com/design/<key>/...)`,
    );
  }
  const m = URL_PATH_RE.exec(url.pathname);
  if (!m?.[1])
    throw new FleetError(
      'invalid_payload',
      `the URL path "${url.pathname.slice(0, 80)}" names no Figma file`,
    );
  const nodeParam = url.searchParams.get('node-id');
  return { fileKey: m[2] ?? m[1], nodeId: nodeParam ? normalizeNodeId(nodeParam) : undefined };
}

/** Resolves a file reference and an optional list of node ids (ids given explicitly win over the URL's node). */
export function resolveTarget(
  file: string,
  nodeIds: readonly string[] | undefined,
): { fileKey: string; nodeIds: string[] } {
  const ref = parseFigmaRef(file);
  const ids = nodeIds && nodeIds.length > 0 ? nodeIds.map(normalizeNodeId) : ref.nodeId ? [ref.nodeId] : [];
  return { fileKey: ref.fileKey, nodeIds: [...new Set(ids)] };
}
