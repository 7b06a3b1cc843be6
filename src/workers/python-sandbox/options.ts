/**
 * The `python_sandbox.sandbox:` sub-section. The shared config schema passes it through untouched; this
 * module owns its shape, its defaults and its errors (a `config_invalid` FleetError naming the field).
 * Defaults are what a production user expects on a 2-core box: 512 MB per session, one core, 64
 * processes, and code execution refused unless real isolation works.
 */
import { z } from 'zod';
import { FleetError } from '../../protocol/errors.js';
import { duration } from '../../config/schema.js';

const MB = 1024 * 1024;

export const ISOLATION_CHOICES = ['auto', 'strong', 'namespaces', 'none'] as const;

export const SandboxOptionsSchema = z
  .object({
    /** Weakest chain accepted. `auto` takes the strongest that passes its self-test; `none` needs allow_insecure. */
    isolation: z.enum(ISOLATION_CHOICES).default('auto'),
    /** Run code without namespaces when nothing better works. Loudly reported everywhere. */
    allow_insecure: z.boolean().default(false),
    python: z.string().min(1).default('/usr/bin/python3'),
    bwrap: z.string().min(1).default('/usr/bin/bwrap'),
    /** First uid of the range handed to sandboxes (one uid per sandbox, recycled). */
    uid_base: z
      .number()
      .int()
      .min(1000)
      .max(2 ** 31 - 70_000)
      .default(200_000),
    uid_count: z.number().int().min(1).max(60_000).default(10_000),
    /**
     * Uids one worker claims out of the range (a lock file per block, so workers on one host never
     * share a uid). Default: 2 x (max_sessions + pool_size) + 16, at least 64.
     */
    uids_per_worker: z.number().int().min(8).max(60_000).optional(),
    memory_mb: z.number().int().min(32).default(512),
    max_processes: z.number().int().min(4).max(4096).default(64),
    /** CPU share per session, in cores (cgroup cpu quota). */
    cpu_cores: z.number().positive().max(256).default(1),
    /** Total CPU seconds one interpreter may burn in its life (RLIMIT_CPU backstop). */
    cpu_seconds: z.number().int().positive().default(3600),
    max_open_files: z.number().int().min(32).max(65_536).default(256),
    /** Size of each workspace's own filesystem (its files and its installed packages). */
    workspace_mb: z.number().int().min(1).default(256),
    /** Files and directories a workspace may hold (its filesystem's inode limit). */
    workspace_inodes: z.number().int().min(64).max(10_000_000).default(65_536),
    max_file_mb: z.number().int().min(1).default(64),
    tmp_mb: z.number().int().min(1).default(64),
    /** stdout + stderr kept per execution; the rest is dropped behind a marker. */
    max_output_kb: z.number().int().min(1).default(1024),
    /** Largest file read/download/upload through file-operations. */
    max_transfer_mb: z.number().int().min(1).default(16),
    session_ttl: duration.prefault('15m'),
    max_sessions: z.number().int().positive().default(32),
    /** Pre-started interpreters waiting for work. 0 disables the pool (every run is cold). */
    pool_size: z.number().int().min(0).max(32).default(2),
    /** Modules imported by pooled interpreters before they are handed out (e.g. numpy). */
    preload: z.array(z.string().regex(/^[A-Za-z_][\w.]*$/)).default([]),
    /** Between SIGINT (KeyboardInterrupt) and killing the whole tree. */
    interrupt_grace: duration.prefault('1500ms'),
    /** pip sources: a local wheel directory (--no-index --find-links) and/or an index URL. */
    wheel_dir: z.string().min(1).optional(),
    index_url: z.string().url().optional(),
    /**
     * Build source distributions found in wheel_dir (inside the sandbox, without network). Off: only
     * wheels are installed and an sdist is refused with package_build_refused. From index_url, always
     * wheels only.
     */
    allow_sdist: z.boolean().default(false),
    pip_timeout: duration.prefault('120s'),
  })
  .strict();

export type SandboxOptions = z.output<typeof SandboxOptionsSchema>;

export interface ResolvedLimits {
  memoryBytes: number;
  maxProcesses: number;
  cpuCores: number;
  cpuSeconds: number;
  maxOpenFiles: number;
  workspaceBytes: number;
  workspaceInodes: number;
  maxFileBytes: number;
  tmpBytes: number;
  maxOutputBytes: number;
  maxTransferBytes: number;
}

export function resolveLimits(o: SandboxOptions): ResolvedLimits {
  return {
    memoryBytes: o.memory_mb * MB,
    maxProcesses: o.max_processes,
    cpuCores: o.cpu_cores,
    cpuSeconds: o.cpu_seconds,
    maxOpenFiles: o.max_open_files,
    workspaceBytes: o.workspace_mb * MB,
    workspaceInodes: o.workspace_inodes,
    maxFileBytes: o.max_file_mb * MB,
    tmpBytes: o.tmp_mb * MB,
    maxOutputBytes: o.max_output_kb * 1024,
    maxTransferBytes: o.max_transfer_mb * MB,
  };
}

/** Validates the raw `sandbox:` value; errors name the field (`python_sandbox.sandbox.memory_mb: ...`). */
export function parseSandboxOptions(raw: unknown): SandboxOptions {
  const result = SandboxOptionsSchema.safeParse(raw ?? {});
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => {
    const path = ['python_sandbox', 'sandbox', ...issue.path.map(String)].join('.');
    return `${path}: ${issue.message}`;
  });
  throw new FleetError('config_invalid', `invalid python_sandbox.sandbox config: ${issues.join('; ')}`, {
    details: { issues },
  });
}
