/**
 * The kind-specific `figma_config:` sub-section, validated here (the shared config schema passes it through
 * untouched). Every option has a production default; tests and benchmarks turn the knobs (higher rate tiers,
 * a loopback base URL).
 *
 * Rate tiers follow Figma's published model: every REST endpoint belongs to tier 1, 2 or 3, and the limit is
 * per minute per token, varying with plan and seat. The defaults are the Professional plan's full-seat numbers;
 * a team on another plan sets its own.
 */
import { z } from 'zod';
import { duration, type WorkerSectionConfig } from '../../config/schema.js';
import { FleetError } from '../../protocol/errors.js';

export const ENDPOINTS = [
  'file',
  'file_nodes',
  'images',
  'image_fills',
  'file_meta',
  'team_projects',
  'project_files',
  'file_components',
  'file_styles',
  'local_variables',
] as const;
export type Endpoint = (typeof ENDPOINTS)[number];

export const TIERS = ['tier1', 'tier2', 'tier3'] as const;
export type Tier = (typeof TIERS)[number];

export const DEFAULT_ENDPOINT_TIERS: Record<Endpoint, Tier> = {
  file: 'tier1',
  file_nodes: 'tier1',
  images: 'tier1',
  image_fills: 'tier2',
  file_meta: 'tier3',
  team_projects: 'tier2',
  project_files: 'tier2',
  file_components: 'tier3',
  file_styles: 'tier3',
  local_variables: 'tier2',
};

const tierLimit = (perMinute: number) =>
  z
    .object({
      /** Requests per minute this token may make on the tier. */
      per_minute: z.number().positive().default(perMinute),
      /** Requests that may go at once before the steady rate applies. @default per_minute */
      burst: z.number().int().positive().optional(),
    })
    .prefault({});

export const FigmaOptionsSchema = z
  .object({
    /** Personal access token or OAuth access token (see `auth`). Without it every Figma call fails with `figma_not_configured`. */
    api_token: z.string().min(1).optional(),
    /**
     * What `api_token` is: `personal` (a personal or plan access token, sent as `X-Figma-Token`) or `oauth`
     * (an OAuth 2 access token, sent as `Authorization: Bearer`). Figma accepts each only in its own header.
     * @default personal
     */
    auth: z.enum(['personal', 'oauth']).default('personal'),
    /** Default team for listing projects. */
    team_id: z.string().min(1).optional(),
    /** @default https://api.figma.com */
    base_url: z.url({ protocol: /^https?$/ }).default('https://api.figma.com'),
    rate_limits: z.object({ tier1: tierLimit(15), tier2: tierLimit(50), tier3: tierLimit(100) }).prefault({}),
    /** Override which tier an endpoint counts against. */
    endpoint_tiers: z.partialRecord(z.enum(ENDPOINTS), z.enum(TIERS)).default({}),
    cache: z
      .object({
        max_entries: z.number().int().nonnegative().default(256),
        /** Bytes of JSON kept at most (estimated from response length). */
        max_bytes: z
          .number()
          .int()
          .positive()
          .default(64 * 1024 * 1024),
        /** How long a file's known version is trusted before a cheap meta call re-checks it. */
        version_ttl: duration.prefault(10),
        /** Lifetime of cached non-file answers (team projects, project files). */
        ttl: duration.prefault(60),
      })
      .prefault({}),
    retry: z
      .object({
        max_attempts: z.number().int().positive().max(10).default(4),
        base_delay: duration.prefault(0.25),
        max_delay: duration.prefault(8),
      })
      .prefault({}),
    /** Per HTTP request (the task deadline still bounds the whole call). */
    request_timeout: duration.prefault(60),
    /** Node ids per request before the client splits a batch (URL length and "Request too large"). */
    max_ids_per_request: z.number().int().positive().default(50),
    /** Size budget of one design answer in characters of JSON, before it pages with a cursor. */
    max_output_chars: z.number().int().min(2000).default(60_000),
    /** Exported asset bytes kept at most per call. */
    max_asset_bytes: z
      .number()
      .int()
      .positive()
      .default(50 * 1024 * 1024),
    /** Calls that may wait for one of the concurrency slots before MCP answers `busy`. */
    max_waiting_calls: z.number().int().nonnegative().default(64),
  })
  .prefault({});

export type FigmaOptions = z.output<typeof FigmaOptionsSchema>;

export function parseFigmaOptions(
  config: Pick<WorkerSectionConfig, 'name'> & { figma_config?: unknown },
): FigmaOptions {
  const raw = config.figma_config ?? {};
  const parsed = FigmaOptionsSchema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues
    .slice(0, 10)
    .map((i) => `figma_mcp.figma_config.${i.path.join('.')}: ${i.message}`);
  throw new FleetError('config_invalid', `invalid configuration: ${lines.join('; ')}`, {
    details: { issues: lines },
  });
}
