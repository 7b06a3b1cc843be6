/**
 * A finished task as MCP tool-call content an agent can use: the output as `structuredContent` plus a bounded
 * text summary, figures and screenshots as `image` content, every other artifact as a `resource_link` the
 * gateway serves through `resources/read`. Sizes are capped so one large artifact never floods the context.
 */
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { FleetError } from '../../protocol/errors.js';
import type { ArtifactStore } from '../artifacts/artifact-store.js';
import type { TaskRecord } from '../queue/task.js';

export interface SizePolicy {
  /** Images up to this size are inlined; larger ones become resource links. */
  inlineImageBytes: number;
  /** `resources/read` serves artifacts up to this size; larger ones only over HTTP. */
  readBytes: number;
  /** The text summary is cut here. */
  summaryChars: number;
}

export const DEFAULT_SIZE_POLICY: SizePolicy = {
  inlineImageBytes: 1024 * 1024,
  readBytes: 8 * 1024 * 1024,
  summaryChars: 8000,
};

const INLINE_IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);
const URI_PREFIX = 'fleet://tasks/';

export function artifactUri(taskId: string, name: string): string {
  return `${URI_PREFIX}${encodeURIComponent(taskId)}/artifacts/${encodeURIComponent(name)}`;
}

export function parseArtifactUri(uri: string): { taskId: string; name: string } {
  const m = uri.startsWith(URI_PREFIX)
    ? /^([^/]+)\/artifacts\/([^/]+)$/.exec(uri.slice(URI_PREFIX.length))
    : null;
  if (!m)
    throw new FleetError(
      'not_found',
      `no resource ${uri.slice(0, 300)} (expected ${URI_PREFIX}<task>/artifacts/<name>)`,
    );
  try {
    return { taskId: decodeURIComponent(m[1]!), name: decodeURIComponent(m[2]!) };
  } catch {
    throw new FleetError('not_found', `no resource ${uri.slice(0, 300)}`);
  }
}

export function summarize(value: unknown, max: number): string {
  const text = JSON.stringify(value ?? null, null, 1) ?? 'null';
  return text.length <= max
    ? text
    : `${text.slice(0, max)}\n… (${text.length - max} more characters in structuredContent)`;
}

/**
 * Fleet's error as an MCP tool error: the code and message in the text, the whole error in `_meta.fleet`.
 * Not in structuredContent: clients check that against the tool's outputSchema even on an error.
 */
export function toolError(err: FleetError): CallToolResult {
  return {
    isError: true,
    content: [{ type: 'text', text: `${err.code}: ${err.message}` }],
    _meta: { fleet: { error: err.toJSON() } },
  };
}

export async function taskResult(
  task: TaskRecord,
  artifacts: ArtifactStore,
  policy: SizePolicy,
  hasOutputSchema: boolean,
): Promise<CallToolResult> {
  if (task.state !== 'succeeded') {
    const e = task.error;
    if (e) return toolError(FleetError.from(e));
    return toolError(new FleetError('internal', `task ${task.id} ended ${task.state} without an error`));
  }
  const output = task.output;
  const isObject = typeof output === 'object' && output !== null && !Array.isArray(output);
  // A declared outputSchema describes the output itself; otherwise a non-object output is wrapped.
  const structured = isObject || hasOutputSchema ? (output as Record<string, unknown>) : { result: output };
  const content: CallToolResult['content'] = [{ type: 'text', text: summarize(output, policy.summaryChars) }];
  for (const a of task.artifacts ?? []) {
    if (INLINE_IMAGE_TYPES.has(a.contentType) && a.size <= policy.inlineImageBytes) {
      const stored = await artifacts.get(task.id, a.name).catch(() => undefined);
      if (stored) {
        content.push({ type: 'image', data: stored.data.toString('base64'), mimeType: a.contentType });
        continue;
      }
    }
    content.push({
      type: 'resource_link',
      uri: artifactUri(task.id, a.name),
      name: a.name,
      mimeType: a.contentType,
      description: `${a.contentType}, ${a.size} bytes${a.size > policy.readBytes ? ` (over the ${policy.readBytes}-byte resources/read cap: download it from /api/tasks/${task.id}/artifacts/${a.name})` : ''}`,
    });
  }
  return { content, structuredContent: structured, _meta: { fleet: { taskId: task.id } } };
}

const TEXT_TYPES = /^(text\/|application\/(json|xml|javascript|x-yaml|yaml)|image\/svg\+xml)/;

export async function readArtifact(
  uri: string,
  artifacts: ArtifactStore,
  policy: SizePolicy,
): Promise<{ contents: ({ uri: string; mimeType: string } & ({ text: string } | { blob: string }))[] }> {
  const { taskId, name } = parseArtifactUri(uri);
  const a = await artifacts.get(taskId, name);
  if (a.data.length > policy.readBytes) {
    throw new FleetError(
      'payload_too_large',
      `artifact ${name} is ${a.data.length} bytes, over the ${policy.readBytes}-byte resources/read cap; download it from /api/tasks/${taskId}/artifacts/${name}`,
      { details: { size: a.data.length, limit: policy.readBytes } },
    );
  }
  return {
    contents: [
      TEXT_TYPES.test(a.contentType)
        ? { uri, mimeType: a.contentType, text: a.data.toString('utf8') }
        : { uri, mimeType: a.contentType, blob: a.data.toString('base64') },
    ],
  };
}
