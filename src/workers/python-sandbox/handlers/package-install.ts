/**
 * `package-install`: `pip install --target` into the session's package directory, which the session's
 * interpreter has on sys.path. No package code ever runs with network access:
 *
 *   1. download (only with `index_url`): `pip download --only-binary=:all:` through the same chain, as the
 *      sandbox uid, with network but with neither the workspace nor the package directory mounted, into
 *      a staging directory on the workspace's own filesystem. Wheels only, so nothing is built or run.
 *   2. install: pip inside the session's sandbox walls (uid, cgroup, seccomp) with NO network, from the
 *      staging directory or the operator's `wheel_dir` (`--no-index --find-links`). Wheels only, unless
 *      `allow_sdist` is set: then an sdist from `wheel_dir` is built there, still without network.
 *
 * An sdist that would need building is refused with `package_build_refused`. Requirement strings are
 * validated so nothing can smuggle a pip option, a URL or a path. Processes pip leaves behind are reaped.
 */
import { chownSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { FleetError } from '../../../protocol/errors.js';
import type { TaskHandler } from '../../common/worker-kind.js';
import { SANDBOX_PKGS } from '../chain.js';
import type { Sandbox, StreamName } from '../sandbox.js';
import { requireSessionId, withSession, type SandboxServices } from '../services.js';

// One way to match each space: `\s*,?\s*` between specifiers backtracked exponentially (20 specifiers and a
// bad last character took ~50 s), in the worker's own check and in the manager's.
const REQUIREMENT =
  /^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]+\])?\s*((===?|~=|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!-]+\s*(?:,\s*)?)*$/;

export const PackageInstallPayloadSchema = z
  .object({
    packages: z
      .array(
        z
          .string()
          .min(1)
          .max(200)
          .regex(REQUIREMENT, 'must be a requirement like "name" or "name==1.2" (no options, URLs or paths)'),
      )
      .min(1)
      .max(50),
    upgrade: z.boolean().default(false),
    /** Install the named packages only, not their dependencies. */
    noDeps: z.boolean().default(false),
  })
  .strict();

export type PackageInstallPayload = z.infer<typeof PackageInstallPayloadSchema>;

export const PackageInstallResultSchema = z.object({
  installed: z.array(z.string()).describe('name-version of each package pip installed by this task'),
  packages: z.array(z.string()).describe('every package installed into the session so far'),
  stdout: z.string(),
  stderr: z.string(),
  durationMs: z.number(),
});
export type PackageInstallResult = z.infer<typeof PackageInstallResultSchema>;

const WHEELS_INSIDE = '/opt/fleet/wheels';
const STAGE_INSIDE = '/opt/fleet/stage';
const PIP = ['{python}', '-I', '-m', 'pip'];
const PIP_COMMON = ['--no-input', '--disable-pip-version-check', '--no-cache-dir', '--progress-bar', 'off'];

/** pip's own retries of a failed index request (its default is 5); each is reported as an upstream try. */
const PIP_RETRIES = 2;

/**
 * The HTTP tries pip spent: one plus each "Retrying (Retry(total=...))" warning it printed. Reported as
 * `details.upstreamAttempts` so the manager counts them against the task's one retry budget.
 */
export function pipUpstreamTries(stderr: string): number {
  return 1 + (stderr.match(/Retrying \(Retry\(total=/g)?.length ?? 0);
}

function withPipTries(err: unknown, stderr: string): unknown {
  if (!(err instanceof FleetError) || err.code === 'cancelled') return err;
  return new FleetError(err.code, err.message, {
    retryable: err.retryable,
    details: { ...err.details, upstreamAttempts: pipUpstreamTries(stderr) },
  });
}

/** PEP 503 normalised project name of a requirement string. */
export function projectName(requirement: string): string {
  const name = /^[A-Za-z0-9][A-Za-z0-9._-]*/.exec(requirement)?.[0] ?? requirement;
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

/** Requested projects that `dir` offers only as a source distribution (no wheel). */
export function sdistOnly(dir: string, requirements: string[]): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const wheels = new Set<string>();
  const sdists = new Set<string>();
  for (const file of names) {
    const wheel = /^(.+?)-[^-]+(-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl$/.exec(file);
    if (wheel?.[1]) wheels.add(projectName(wheel[1]));
    const sdist = /^(.+)-[^-]+\.(tar\.gz|zip|tar\.bz2|tgz)$/.exec(file);
    if (sdist?.[1]) sdists.add(projectName(sdist[1]));
  }
  return requirements.map(projectName).filter((n) => sdists.has(n) && !wheels.has(n));
}

interface PipRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export function createPackageInstallHandler(
  services: SandboxServices,
): TaskHandler<PackageInstallPayload, PackageInstallResult> {
  const { options } = services;
  return {
    capability: 'package-install',
    description:
      "Installs Python packages (wheels; sdists only when the operator allows) with pip into a session, from the configured wheel directory or index, importable by the session's later runs. No package code runs with network access.",
    payloadSchema: PackageInstallPayloadSchema,
    resultSchema: PackageInstallResultSchema,
    async run(payload, ctx) {
      const sessionId = requireSessionId(ctx, 'package-install');
      if (!options.wheel_dir && !options.index_url) {
        throw new FleetError(
          'package_install_failed',
          'no package source is configured (python_sandbox.sandbox.wheel_dir or index_url)',
        );
      }
      return withSession(services, sessionId, { create: true }, async (session) => {
        const chain = services.runtime.requireChain();
        const insecure = chain.level === 'none';
        const sandbox = session.sandbox;
        const started = Date.now();
        const timeoutMs = Math.max(1, Math.min(options.pip_timeout, ctx.deadline - Date.now() - 100));
        const onOutput = (stream: StreamName, data: string) => ctx.progress({ log: { stream, data } });
        const stage = options.index_url ? makeStage(sandbox, chain.dropUid) : undefined;
        try {
          const logs = { stdout: '', stderr: '' };
          const pip = async (argv: string[], opts: Parameters<Sandbox['runSidecar']>[1]) => {
            const res = await sandbox.runSidecar(argv, opts);
            logs.stdout += res.stdout;
            logs.stderr += res.stderr;
            check(res, ctx.signal, timeoutMs, logs);
            return res;
          };
          const sidecar = { signal: ctx.signal, timeoutMs, maxOutputBytes: 64 * 1024, onOutput };
          const sources: string[] = [];
          const roBinds: [string, string][] = [];
          if (options.wheel_dir) {
            sources.push(insecure ? options.wheel_dir : WHEELS_INSIDE);
            if (!insecure) roBinds.push([options.wheel_dir, WHEELS_INSIDE]);
          }
          const refuseSdists = (err: unknown): never => {
            const refused =
              !options.allow_sdist && options.wheel_dir ? sdistOnly(options.wheel_dir, payload.packages) : [];
            if (refused.length > 0 && err instanceof FleetError && err.code === 'package_install_failed') {
              throw new FleetError(
                'package_build_refused',
                `${refused.join(', ')}: only a source distribution is available, and building one is off (python_sandbox.sandbox.allow_sdist); provide a wheel`,
                { details: { packages: refused } },
              );
            }
            throw err;
          };
          if (stage && options.index_url) {
            // Step 1: fetch wheels with network, as the sandbox uid, no workspace mounted, nothing run.
            const dest = insecure ? stage : STAGE_INSIDE;
            const argv = [...PIP, 'download', ...PIP_COMMON, '--only-binary=:all:', '--dest', dest];
            argv.push('--index-url', options.index_url);
            for (const src of sources) argv.push('--find-links', src);
            if (payload.noDeps) argv.push('--no-deps');
            argv.push('--', ...payload.packages);
            argv.splice(argv.indexOf('--dest'), 0, '--retries', String(PIP_RETRIES));
            await pip(argv, {
              ...sidecar,
              network: true,
              workspace: false,
              roBinds,
              rwBinds: insecure ? [] : [[stage, STAGE_INSIDE]],
            })
              .catch((err: unknown) => {
                throw withPipTries(err, logs.stderr);
              })
              .catch(refuseSdists);
            sources.push(dest);
          }
          // Step 2: install with no network, from local files only.
          const argv = [
            ...PIP,
            'install',
            ...PIP_COMMON,
            '--target',
            insecure ? sandbox.dirs.pkgDir : SANDBOX_PKGS,
          ];
          argv.push('--no-warn-script-location', '--break-system-packages', '--no-compile', '--no-index');
          if (options.allow_sdist) argv.push('--no-build-isolation');
          else argv.push('--only-binary=:all:');
          if (payload.upgrade) argv.push('--upgrade');
          if (payload.noDeps) argv.push('--no-deps');
          for (const src of sources) argv.push('--find-links', src);
          argv.push('--', ...payload.packages);
          const res = await pip(argv, {
            ...sidecar,
            network: false,
            roBinds: [
              ...roBinds,
              ...(stage && !insecure ? ([[stage, STAGE_INSIDE]] as [string, string][]) : []),
            ],
          }).catch(refuseSdists);
          const installed = /Successfully installed (.+)/.exec(res.stdout)?.[1]?.trim().split(/\s+/) ?? [];
          session.packages.push(...installed);
          return {
            output: {
              installed,
              packages: session.packages,
              stdout: logs.stdout,
              stderr: logs.stderr,
              durationMs: Date.now() - started,
            },
          };
        } finally {
          // pip and its builds share the session's cgroup: nothing of theirs outlives the task.
          await sandbox.reapStrays();
          // Only pip touched the staging directory, and every process that could is gone by now.
          if (stage) rmSync(stage, { recursive: true, force: true });
        }
      });
    },
  };
}

let stages = 0;

/** A staging directory on the workspace's own filesystem (so downloads count against its quota). */
function makeStage(sandbox: Sandbox, chown: boolean): string {
  const dir = join(sandbox.dirs.root, `stage-${++stages}`);
  mkdirSync(dir, { mode: 0o700 });
  if (chown) chownSync(dir, sandbox.uid, sandbox.uid);
  return dir;
}

function check(
  res: PipRun,
  signal: AbortSignal,
  timeoutMs: number,
  logs: { stdout: string; stderr: string },
): void {
  if (signal.aborted) throw new FleetError('cancelled', 'package install cancelled');
  if (res.timedOut)
    throw new FleetError('timeout', `pip did not finish within ${timeoutMs} ms`, { details: logs });
  if (res.code !== 0) {
    const lastLines = res.stderr
      .trim()
      .split('\n')
      .filter((l) => l.trim())
      .slice(-4)
      .join('\n');
    throw new FleetError(
      'package_install_failed',
      `pip failed: ${lastLines || `exit ${res.code ?? res.signal}`}`.slice(0, 4000),
      { details: { exitCode: res.code, ...logs } },
    );
  }
}
