/**
 * How a sandboxed process is launched, for each isolation level. One function builds the argv; the
 * interpreter, pip and the self-test all go through it, so there is one chain to audit.
 *
 *   strong      cgroups (memory, pids, cpu) → rlimits → unprivileged uid → bwrap (all namespaces, no
 *               network, read-only minimal root, seccomp) → /usr/bin/python3
 *   namespaces  the same without cgroups: rlimits (with RLIMIT_AS for memory) carry the limits, the pid
 *               namespace still takes every descendant down with it
 *   none        rlimits and an unprivileged uid only: NOT a sandbox; used only with allow_insecure
 *
 * bwrap never runs as root here: with a user namespace the sandbox uid would map to host root.
 */
import { existsSync } from 'node:fs';
import type { CgroupLayout } from './cgroups.js';
import type { ResolvedLimits } from './options.js';
import { RUNNER_SOURCE } from './runner-source.js';

export const ISOLATION_LEVELS = ['strong', 'namespaces', 'none'] as const;
export type IsolationLevel = (typeof ISOLATION_LEVELS)[number];

export interface ChainConfig {
  level: IsolationLevel;
  python: string;
  bwrap: string;
  /** Drop to the sandbox uid with setpriv (only possible, and only needed, when Fleet runs as root). */
  dropUid: boolean;
  cgroups: CgroupLayout | undefined;
  seccomp: Buffer | undefined;
  limits: ResolvedLimits;
}

export interface LaunchSpec {
  uid: number;
  /** Host directory bound read-write at /workspace. */
  workDir: string;
  /** Host directory of pip-installed packages, bound at /opt/fleet/pkgs. */
  pkgDir: string;
  pkgDirWritable: boolean;
  /** Host path of the runner script. */
  runnerPath: string;
  cgroupProcs: string[];
  network: boolean;
  /** Extra read-only binds (host → sandbox), e.g. the wheel directory. */
  roBinds?: [string, string][];
  /** Extra writable binds (host → sandbox), e.g. pip's download directory. */
  rwBinds?: [string, string][];
  /** Bind the workspace and the package directory (default). Off for pip's download step. */
  workspace?: boolean;
  /**
   * The workspace is a tmpfs of this size made by bwrap inside the sandbox's mount namespace, instead of
   * the host directory: the quota when the worker cannot mount one per workspace itself (not root).
   */
  workspaceTmpfsBytes?: number;
  /** Command inside the sandbox; `{python}` is the interpreter. */
  argv: string[];
}

export interface Launch {
  file: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Data the caller writes to these stdio indexes (then closes them): the seccomp program, the runner. */
  inputs: Map<number, Buffer>;
}

export const SANDBOX_WORKSPACE = '/workspace';
export const SANDBOX_PKGS = '/opt/fleet/pkgs';
export const SANDBOX_RUNNER = '/opt/fleet/runner.py';
export const SECCOMP_FD = 5;
/** The runner reaches bwrap as data on this fd (`--ro-bind-data`): no host path of it inside the sandbox. */
export const RUNNER_FD = 6;
const RUNNER_BYTES = Buffer.from(RUNNER_SOURCE, 'utf8');
export const SANDBOX_HOSTNAME = 'fleet-sandbox';

/** Files numpy, matplotlib, fontconfig and pip read outside /usr; absent ones are skipped (`--ro-bind-try`). */
const ETC_FILES = [
  '/etc/alternatives',
  '/etc/ld.so.cache',
  '/etc/ld.so.conf',
  '/etc/ld.so.conf.d',
  '/etc/fonts',
  '/etc/matplotlibrc',
  '/etc/localtime',
  '/etc/mime.types',
  '/etc/python3',
  '/etc/python3.11',
];
const NETWORK_ETC = [
  '/etc/resolv.conf',
  '/etc/hosts',
  '/etc/nsswitch.conf',
  '/etc/ssl',
  '/etc/ca-certificates',
];

export function sandboxEnv(level: IsolationLevel, spec: Pick<LaunchSpec, 'workDir'>): Record<string, string> {
  const home = level === 'none' ? spec.workDir : '/tmp';
  return {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    HOME: home,
    LANG: 'C.UTF-8',
    LC_ALL: 'C.UTF-8',
    MPLBACKEND: 'Agg',
    MPLCONFIGDIR: level === 'none' ? `${spec.workDir}/.mpl` : '/tmp/.mpl',
    OPENBLAS_NUM_THREADS: '1',
    OMP_NUM_THREADS: '1',
    PYTHONDONTWRITEBYTECODE: '1',
    PIP_DISABLE_PIP_VERSION_CHECK: '1',
    PIP_NO_CACHE_DIR: '1',
  };
}

/** Pretty names of the chain's steps, for /health. */
export function describeChain(
  config: Pick<ChainConfig, 'level' | 'dropUid' | 'cgroups' | 'seccomp'>,
): string[] {
  const steps: string[] = [];
  if (config.level === 'strong' && config.cgroups) steps.push(`cgroups(${config.cgroups.mode})`);
  steps.push('rlimits');
  if (config.dropUid) steps.push('setpriv');
  if (config.level !== 'none') steps.push('bwrap(user,pid,net,ipc,uts,cgroup,mount)');
  if (config.level !== 'none' && config.seccomp) steps.push('seccomp');
  steps.push('python3');
  return steps;
}

export function buildLaunch(config: ChainConfig, spec: LaunchSpec): Launch {
  const { limits } = config;
  const insideRunner = config.level === 'none' ? spec.runnerPath : SANDBOX_RUNNER;
  const argv = spec.argv.map((a) => (a === '{python}' ? config.python : a === '{runner}' ? insideRunner : a));
  const prlimit = [
    'prlimit',
    `--cpu=${limits.cpuSeconds}`,
    `--fsize=${limits.maxFileBytes}`,
    `--nofile=${limits.maxOpenFiles}`,
    // Per-uid counter (one uid per sandbox); the pids cgroup is the real limit, this the backstop.
    `--nproc=${limits.maxProcesses + 8}`,
    '--core=0',
  ];
  if (config.level !== 'strong' || !config.cgroups) {
    // Without a memory cgroup the address-space limit is all there is; numpy maps more than it touches.
    prlimit.push(`--as=${limits.memoryBytes + 256 * 1024 * 1024}`);
  }
  prlimit.push('--');
  const setpriv = config.dropUid
    ? ['setpriv', `--reuid=${spec.uid}`, `--regid=${spec.uid}`, '--clear-groups', '--inh-caps=-all', '--']
    : [];
  let inner: string[];
  const inputs = new Map<number, Buffer>();
  if (config.level === 'none') {
    inner = argv;
  } else {
    const b: string[] = [config.bwrap, '--unshare-all', '--unshare-user', '--disable-userns'];
    if (spec.network) b.push('--share-net');
    b.push('--die-with-parent', '--new-session', '--uid', String(spec.uid), '--gid', String(spec.uid));
    // Its own UTS namespace (--unshare-all): the host's name stays out of the sandbox.
    b.push('--hostname', SANDBOX_HOSTNAME);
    b.push('--ro-bind', '/usr', '/usr');
    for (const [link, target] of [
      ['/bin', 'usr/bin'],
      ['/sbin', 'usr/sbin'],
      ['/lib', 'usr/lib'],
      ['/lib64', 'usr/lib64'],
      ['/lib32', 'usr/lib32'],
    ] as const) {
      if (existsSync(`/usr/${target.slice(4)}`)) b.push('--symlink', target, link);
    }
    for (const path of spec.network ? [...ETC_FILES, ...NETWORK_ETC] : ETC_FILES)
      b.push('--ro-bind-try', path, path);
    b.push('--proc', '/proc', '--dev', '/dev');
    b.push('--size', String(limits.tmpBytes), '--tmpfs', '/tmp');
    if (spec.workspace !== false) {
      if (spec.workspaceTmpfsBytes !== undefined)
        b.push('--size', String(spec.workspaceTmpfsBytes), '--tmpfs', SANDBOX_WORKSPACE);
      else b.push('--bind', spec.workDir, SANDBOX_WORKSPACE);
      b.push(spec.pkgDirWritable ? '--bind' : '--ro-bind', spec.pkgDir, SANDBOX_PKGS);
    } else {
      b.push('--dir', SANDBOX_WORKSPACE);
    }
    b.push('--ro-bind-data', String(RUNNER_FD), SANDBOX_RUNNER);
    inputs.set(RUNNER_FD, RUNNER_BYTES);
    for (const [host, inside] of spec.roBinds ?? []) b.push('--ro-bind', host, inside);
    for (const [host, inside] of spec.rwBinds ?? []) b.push('--bind', host, inside);
    // The root bwrap builds is a writable tmpfs; freeze it so only /workspace and /tmp take writes.
    b.push('--remount-ro', '/');
    b.push('--chdir', SANDBOX_WORKSPACE, '--clearenv');
    for (const [k, v] of Object.entries(sandboxEnv(config.level, spec))) b.push('--setenv', k, v);
    if (config.seccomp) {
      inputs.set(SECCOMP_FD, config.seccomp);
      b.push('--seccomp', String(SECCOMP_FD));
    }
    b.push('--', ...argv);
    inner = b;
  }
  const chain = [...prlimit, ...setpriv, ...inner];
  const env: NodeJS.ProcessEnv =
    config.level === 'none' ? { ...sandboxEnv('none', spec) } : { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
  if (spec.cgroupProcs.length > 0) {
    // The launcher shell joins the groups before exec, so nothing the sandbox starts can run outside them.
    env.FLEET_CGROUPS = spec.cgroupProcs.join('\n');
    return {
      file: '/bin/sh',
      args: [
        '-c',
        'IFS="\n"; for f in $FLEET_CGROUPS; do echo $$ > "$f" || exit 111; done; unset FLEET_CGROUPS; exec "$@"',
        'fleet-sandbox',
        ...chain,
      ],
      env: { ...env, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
      inputs,
    };
  }
  return {
    file: chain[0] ?? 'prlimit',
    args: chain.slice(1),
    env: { ...env, PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
    inputs,
  };
}
