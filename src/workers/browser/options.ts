/**
 * The browser worker's own options: the `browser_config:` sub-key of the `browser_worker` section. The shared
 * config schema passes that sub-key through untouched, so the kind validates it here, with errors that name the
 * field (`browser_config.pool_size: ...`). Defaults are the spec's values plus the measured facts in the README.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { duration, type WorkerSectionConfig } from '../../config/schema.js';
import { FleetError } from '../../protocol/errors.js';

/** The spec's list, used when `software_rendering` is on (the default for machines without a GPU). */
export const SOFTWARE_RENDERING_FLAGS = [
  '--disable-gpu',
  '--disable-software-rasterizer',
  '--disable-dev-shm-usage',
  '--disable-accelerated-2d-canvas',
  '--disable-accelerated-jpeg-decoding',
  '--disable-accelerated-mjpeg-decode',
  '--disable-accelerated-video-decode',
] as const;

/** The spec's throttling/memory flags, used when `cpu_optimized` is on. */
export const CPU_OPTIMIZED_FLAGS = [
  '--memory-pressure-off',
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
] as const;

/** The spec's GPU variant (`performance_mode: gpu`), replacing the software-rendering list. */
export const GPU_FLAGS = [
  '--use-gl=angle',
  '--use-angle=gl-egl',
  '--enable-gpu-rasterization',
  '--ignore-gpu-blocklist',
] as const;

/** Close every transport around the task's proxy; why each one is here: `transport-guard.ts`. */
export const TRANSPORT_GUARD_FLAGS = [
  '--force-webrtc-ip-handling-policy=disable_non_proxied_udp',
  '--disable-quic',
  '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
  '--dns-prefetch-disable',
  '--disable-domain-reliability',
  '--disable-client-side-phishing-detection',
  '--no-pings',
] as const;

/** Switches a configuration may not pass: they reopen a transport above or move the proxy. */
const TRANSPORT_FORBIDDEN_FLAG_RE =
  /^--(force-webrtc-ip-handling-policy|webrtc-|enforce-webrtc-ip-permission-check|enable-quic|origin-to-force-quic-on|quic-|proxy-pac-url|winhttp-proxy-resolver|dns-over-https|enable-dns-over-https|host-rules|enable-webtransport)/;

/** Always on: measured to work with Debian's Chromium, and they keep the browser from phoning home. */
export const BASE_FLAGS = [
  '--no-sandbox',
  '--disable-setuid-sandbox',
  ...TRANSPORT_GUARD_FLAGS,
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-extensions',
  '--metrics-recording-only',
  '--no-default-browser-check',
  '--mute-audio',
] as const;

/** Flags that would undo the URL policy or fight Playwright; refused in `chrome_flags`. */
const FORBIDDEN_FLAG_RE =
  /^--(user-data-dir|remote-debugging|proxy-|no-proxy-server|proxy-server|host-resolver-rules|disable-web-security|allow-file-access)/;

/**
 * Memory budget per screenshot pixel. Measured (3 × 512 MB instances, 4 concurrent full-page PNGs 1280 px wide,
 * so two share an instance): 8.3 Mpx each all succeed (worker peak 887 MB PSS); 16.6 Mpx, one of 4 fails; 32 Mpx,
 * the browsers are OOM-killed (the browser process holds a copy of the bitmap, and it can be the largest).
 */
const SCREENSHOT_BYTES_PER_PIXEL = 64;

const MEMORY_RE = /^(\d+(?:\.\d+)?)\s*(kb|mb|gb|k|m|g)?$/i;

/** "512MB", "1g", 512 → megabytes. */
const megabytes = z.union([z.number().positive(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') return Math.round(value);
  const m = MEMORY_RE.exec(value.trim());
  if (!m) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a size (use 512, "512MB", "1GB")` });
    return z.NEVER;
  }
  const n = Number(m[1]);
  const unit = (m[2] ?? 'mb').toLowerCase()[0];
  return Math.round(unit === 'k' ? n / 1024 : unit === 'g' ? n * 1024 : n);
});

export const UrlPolicySchema = z
  .object({
    /** Schemes a page may load. `ws`/`wss` ride on http/https. */
    allowed_schemes: z
      .array(z.enum(['http', 'https']))
      .min(1)
      .default(['http', 'https']),
    /** When non-empty, only these host names may be reached (`example.com`, `*.example.com`). */
    allowed_hosts: z.array(z.string().min(1)).default([]),
    /** Host names never reached (`*.internal`), checked before `allowed_hosts`. */
    denied_hosts: z.array(z.string().min(1)).default([]),
    /**
     * Addresses exempt from the private-range block: an IP, a CIDR, optionally with `:port`
     * (`127.0.0.1:8080`, `[::1]:8080`, `10.0.0.0/8`). Tests allow `127.0.0.1:<their port>`.
     */
    allowed_addresses: z.array(z.string().min(1)).default([]),
    /** Block private, loopback, link-local, CGNAT, metadata and reserved ranges (unless in `allowed_addresses`). */
    block_private: z.boolean().default(true),
    /** When non-empty, only these ports. */
    allowed_ports: z.array(z.number().int().min(1).max(65535)).default([]),
  })
  .strict()
  .prefault({});

export const LimitsSchema = z
  .object({
    /** Raw HTML given in a payload. */
    max_html_bytes: z
      .number()
      .int()
      .positive()
      .default(5 * 1024 * 1024),
    /** One screenshot, PDF, download or the JSON output of a task. */
    max_output_bytes: z
      .number()
      .int()
      .positive()
      .default(25 * 1024 * 1024),
    /** Bytes one proxied response or tunnel may carry before it is cut. */
    max_response_bytes: z
      .number()
      .int()
      .positive()
      .default(50 * 1024 * 1024),
    /** A download (when a task asks for downloads). */
    max_download_bytes: z
      .number()
      .int()
      .positive()
      .default(20 * 1024 * 1024),
    /** Uploaded files in a form-filling task, each. */
    max_upload_bytes: z
      .number()
      .int()
      .positive()
      .default(10 * 1024 * 1024),
    max_steps: z.number().int().positive().default(200),
    /**
     * Device pixels one screenshot may have (width × height × deviceScaleFactor²), checked before the capture:
     * the renderer and the browser each hold the raw RGBA bitmap, so a huge one takes the instance down.
     * Default: the instance's memory limit / 64 bytes (8 Mpx for 512 MB: 1280 × 6 550 at scale 1, measured).
     */
    max_screenshot_pixels: z.number().int().positive().optional(),
    /** Characters of scraped text/HTML per field before truncation. */
    max_text_chars: z.number().int().positive().default(1_000_000),
  })
  .strict()
  .prefault({});

export const BrowserConfigSchema = z
  .object({
    type: z.literal('headless-chrome').default('headless-chrome'),
    pool_size: z.number().int().min(1).max(32).default(3),
    auto_restart: z.boolean().default(true),
    /** Per-instance PSS limit, MB (env BROWSER_MEMORY_LIMIT). `memory_limit: "512MB"` (the spec's spelling) also works. */
    memory_limit_mb: megabytes.optional(),
    memory_limit: megabytes.optional(),
    software_rendering: z.boolean().default(true),
    cpu_optimized: z.boolean().default(true),
    performance_mode: z.enum(['cpu_optimized', 'gpu', 'balanced']).optional(),
    /** The real binary, not Debian's shell wrapper. headless-shell launches ~4x faster at half the memory. */
    executable_path: z.string().min(1).default('/usr/lib/chromium/chromium-headless-shell'),
    /** Replaces the spec's software-rendering + cpu flag lists when given. */
    chrome_flags: z.array(z.string().min(1)).optional(),
    /** Added after everything else. */
    extra_flags: z.array(z.string().min(1)).default([]),
    /** Recycle an instance after this many tasks. */
    max_tasks_per_instance: z.number().int().positive().default(100),
    launch_timeout: duration.prefault('30s'),
    /** How long a graceful close (context or browser) may take before the process group is killed. */
    close_timeout: duration.prefault('3s'),
    memory_check_interval: duration.prefault('5s'),
    /**
     * Hold `memory_limit_mb` in the kernel: each browser in its own memory cgroup (v1 or v2), so the renderer
     * that goes over is OOM-killed alone. Without a writable cgroup the worker warns and only samples PSS.
     */
    memory_cgroup: z.boolean().default(true),
    /**
     * Run the browsers in a network namespace of their own where the only reachable sockets are the task
     * proxies (network-namespace.ts). Needs root; without it the worker warns and relies on the switches.
     */
    network_namespace: z.boolean().default(true),
    /** A page whose main thread answers no probe this long fails its task with `page_unresponsive`. */
    unresponsive_timeout: duration.prefault('10s'),
    /** Kill the browser if the worker dies, even by SIGKILL (PR_SET_PDEATHSIG through setpriv when present). */
    die_with_worker: z.boolean().default(true),
    /** Root of per-browser profile and temp dirs (default: <os tmp>/fleet-browser). */
    temp_dir: z.string().min(1).optional(),
    default_viewport: z
      .object({
        width: z.number().int().min(1).max(8192).default(1280),
        height: z.number().int().min(1).max(8192).default(720),
      })
      .strict()
      .prefault({}),
    url_policy: UrlPolicySchema,
    limits: LimitsSchema,
  })
  .strict()
  .prefault({});

export type BrowserConfigInput = z.input<typeof BrowserConfigSchema>;
type Parsed = z.output<typeof BrowserConfigSchema>;
export type UrlPolicyOptions = Parsed['url_policy'];
export type BrowserLimits = Omit<Parsed['limits'], 'max_screenshot_pixels'> & {
  max_screenshot_pixels: number;
};

export interface BrowserOptions extends Omit<
  Parsed,
  'memory_limit' | 'memory_limit_mb' | 'performance_mode' | 'limits'
> {
  memory_limit_mb: number;
  limits: BrowserLimits;
  performance_mode: 'cpu_optimized' | 'gpu' | 'balanced';
  /** The flags passed to Chromium, resolved from the switches above. */
  flags: string[];
}

export function resolveFlags(
  o: Pick<Parsed, 'chrome_flags' | 'software_rendering' | 'cpu_optimized' | 'extra_flags'>,
  mode: BrowserOptions['performance_mode'],
): string[] {
  const out: string[] = [...BASE_FLAGS];
  if (o.chrome_flags) out.push(...o.chrome_flags);
  else {
    if (mode === 'gpu') out.push(...GPU_FLAGS);
    else if (o.software_rendering) out.push(...SOFTWARE_RENDERING_FLAGS);
    if (o.cpu_optimized || mode === 'cpu_optimized') out.push(...CPU_OPTIMIZED_FLAGS);
  }
  out.push(...o.extra_flags);
  return [...new Set(out)];
}

/** Validates `browser_config`; throws `config_invalid` naming the field. */
export function parseBrowserOptions(raw: unknown): BrowserOptions {
  const parsed = BrowserConfigSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const lines = parsed.error.issues.slice(0, 10).map((i) => {
      const where = ['browser_config', ...i.path.map(String)].join('.');
      const msg = i.code === 'unrecognized_keys' ? `unknown field(s) ${i.keys.join(', ')}` : i.message;
      return `${where}: ${msg}`;
    });
    throw new FleetError('config_invalid', `invalid configuration: ${lines.join('; ')}`, {
      details: { issues: lines },
    });
  }
  const { memory_limit, memory_limit_mb, performance_mode, ...rest } = parsed.data;
  const mode = performance_mode ?? (rest.cpu_optimized ? 'cpu_optimized' : 'balanced');
  const flagLists: Array<[string, string[]]> = [
    ['chrome_flags', rest.chrome_flags ?? []],
    ['extra_flags', rest.extra_flags],
  ];
  for (const [field, list] of flagLists) {
    const bad = list.find((f) => FORBIDDEN_FLAG_RE.test(f) || TRANSPORT_FORBIDDEN_FLAG_RE.test(f));
    if (bad) {
      throw new FleetError(
        'config_invalid',
        `invalid configuration: browser_config.${field}: "${bad}" is managed by the worker (profile dir, proxy, URL policy) and may not be set`,
      );
    }
  }
  for (const entry of rest.url_policy.allowed_addresses) {
    if (!parseAddressRule(entry)) {
      throw new FleetError(
        'config_invalid',
        `invalid configuration: browser_config.url_policy.allowed_addresses: "${entry}" is not an IP, CIDR or IP:port`,
      );
    }
  }
  const limitMb = memory_limit_mb ?? memory_limit ?? 512;
  return {
    ...rest,
    limits: {
      ...rest.limits,
      max_screenshot_pixels:
        rest.limits.max_screenshot_pixels ?? Math.floor((limitMb * 1024 * 1024) / SCREENSHOT_BYTES_PER_PIXEL),
    },
    memory_limit_mb: limitMb,
    performance_mode: mode,
    flags: resolveFlags(rest, mode),
  };
}

/** The kind's options from the worker section (the `browser_config` key). */
export function browserOptionsFromSection(section: WorkerSectionConfig): BrowserOptions {
  return parseBrowserOptions((section as Record<string, unknown>).browser_config);
}

export interface AddressRule {
  address: string;
  prefix: number | undefined;
  family: 'ipv4' | 'ipv6';
  port: number | undefined;
}

/** "127.0.0.1", "127.0.0.1:8080", "10.0.0.0/8", "::1", "[::1]:8080", "fd00::/8" → rule; anything else → undefined. */
export function parseAddressRule(entry: string): AddressRule | undefined {
  let text = entry.trim();
  let port: number | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(text);
  if (bracket) {
    text = bracket[1]!;
    if (bracket[2]) port = Number(bracket[2]);
  } else {
    const v4port = /^([\d.]+(?:\/\d+)?):(\d+)$/.exec(text);
    if (v4port) {
      text = v4port[1]!;
      port = Number(v4port[2]);
    }
  }
  if (port !== undefined && (!Number.isInteger(port) || port < 1 || port > 65535)) return undefined;
  const [address, prefixText] = text.split('/') as [string, string | undefined];
  const fam = isIP(address);
  if (fam === 0) return undefined;
  const family = fam === 4 ? 'ipv4' : 'ipv6';
  let prefix: number | undefined;
  if (prefixText !== undefined) {
    prefix = Number(prefixText);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > (fam === 4 ? 32 : 128)) return undefined;
  }
  return { address, prefix, family, port };
}
