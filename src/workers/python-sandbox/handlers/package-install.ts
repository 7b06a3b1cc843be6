/**
 * `package-install`: `pip install --target` into the session's package directory, which the session's
 * interpreter has on sys.path. pip runs inside the session's sandbox walls (same uid, cgroup, seccomp),
 * from the configured wheel directory (`--no-index --find-links`, no network) and/or the configured
 * index URL (the only case where the sandbox gets network, and only for pip). Requirement strings are
 * validated so nothing can smuggle a pip option, a URL or a path.
 */
import { z } from 'zod';
import { FleetError } from '../../../protocol/errors.js';
import type { TaskHandler } from '../../common/worker-kind.js';
import { SANDBOX_PKGS } from '../chain.js';
import { requireSessionId, withSession, type SandboxServices } from '../services.js';

const REQUIREMENT =
  /^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9._,-]+\])?\s*((===?|~=|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!-]+\s*,?\s*)*$/;

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

const WHEELS_INSIDE = '/opt/fleet/wheels';

export function createPackageInstallHandler(services: SandboxServices): TaskHandler<PackageInstallPayload> {
  const { options } = services;
  return {
    capability: 'package-install',
    description:
      "Installs Python packages with pip into a session (from the configured wheel directory or index), importable by the session's later runs.",
    payloadSchema: PackageInstallPayloadSchema,
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
        const target = insecure ? session.sandbox.dirs.pkgDir : SANDBOX_PKGS;
        const wheels = options.wheel_dir ? (insecure ? options.wheel_dir : WHEELS_INSIDE) : undefined;
        const argv = [
          '{python}',
          '-I',
          '-m',
          'pip',
          'install',
          '--target',
          target,
          '--no-input',
          '--disable-pip-version-check',
          '--no-cache-dir',
          '--progress-bar',
          'off',
          '--no-warn-script-location',
          '--break-system-packages',
          '--no-compile',
        ];
        if (payload.upgrade) argv.push('--upgrade');
        if (payload.noDeps) argv.push('--no-deps');
        if (wheels) argv.push('--find-links', wheels);
        if (options.index_url) argv.push('--index-url', options.index_url);
        else argv.push('--no-index');
        argv.push('--', ...payload.packages);
        const started = Date.now();
        const timeoutMs = Math.max(1, Math.min(options.pip_timeout, ctx.deadline - Date.now() - 100));
        const res = await session.sandbox.runSidecar(argv, {
          network: Boolean(options.index_url),
          roBinds: options.wheel_dir && !insecure ? [[options.wheel_dir, WHEELS_INSIDE]] : [],
          signal: ctx.signal,
          timeoutMs,
          maxOutputBytes: 64 * 1024,
          onOutput: (stream, data) => ctx.progress({ log: { stream, data } }),
        });
        if (ctx.signal.aborted) throw new FleetError('cancelled', 'package install cancelled');
        if (res.timedOut)
          throw new FleetError('timeout', `pip did not finish within ${timeoutMs} ms`, {
            details: { stdout: res.stdout, stderr: res.stderr },
          });
        if (res.code !== 0) {
          const lastLines = res.stderr
            .trim()
            .split('\n')
            .filter((l) => l.trim())
            .slice(-4)
            .join('\n');
          throw new FleetError(
            'package_install_failed',
            `pip install failed: ${lastLines || `exit ${res.code ?? res.signal}`}`.slice(0, 4000),
            {
              details: { exitCode: res.code, stdout: res.stdout, stderr: res.stderr },
            },
          );
        }
        const installed = /Successfully installed (.+)/.exec(res.stdout)?.[1]?.trim().split(/\s+/) ?? [];
        session.packages.push(...installed);
        return {
          output: {
            installed,
            packages: session.packages,
            stdout: res.stdout,
            stderr: res.stderr,
            durationMs: Date.now() - started,
          },
        };
      });
    },
  };
}
