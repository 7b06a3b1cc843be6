/**
 * What the machine offers, found at start and never assumed: cgroup layout (v1, v2, hybrid or none),
 * bwrap and whether unprivileged user namespaces work, setpriv/prlimit, the interpreter, seccomp support.
 * From that the strongest chain is picked; the runtime then self-tests it with hostile probes and steps
 * down a level when a probe escapes.
 */
import { accessSync, constants, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { probeCgroups, cgroupCapabilities, type CgroupLayout } from './cgroups.js';
import { seccompSupported } from './seccomp.js';

export interface HostProbe {
  root: boolean;
  python: { path: string; ok: boolean; version?: string };
  bwrap: { path: string; ok: boolean; version?: string; userns: boolean; error?: string };
  setpriv: boolean;
  prlimit: boolean;
  cgroups: CgroupLayout;
  cgroupCaps: ReturnType<typeof cgroupCapabilities>;
  seccomp: boolean;
  landlock: boolean;
  pyflakes: boolean;
  numpy: boolean;
  matplotlib: boolean;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string): boolean {
  return ['/usr/bin', '/bin', '/usr/sbin', '/sbin'].some((dir) => executable(`${dir}/${name}`));
}

export function probeHost(python: string, bwrap: string, testUid: number): HostProbe {
  const root = process.getuid?.() === 0;
  const py = spawnSync(python, ['-I', '-c', 'import sys;print(sys.version.split()[0])'], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  const pythonOk = py.status === 0;
  const mods = pythonOk
    ? spawnSync(
        python,
        [
          '-I',
          '-c',
          'import importlib.util as u;print(*[int(u.find_spec(m) is not None) for m in ("pyflakes","numpy","matplotlib")])',
        ],
        { encoding: 'utf8', timeout: 10_000 },
      )
        .stdout.trim()
        .split(' ')
    : [];
  const setpriv = onPath('setpriv');
  const prlimit = onPath('prlimit');
  let bwrapInfo: HostProbe['bwrap'] = { path: bwrap, ok: false, userns: false };
  if (executable(bwrap)) {
    const v = spawnSync(bwrap, ['--version'], { encoding: 'utf8', timeout: 5_000 });
    // The real question: can an unprivileged uid build the namespaces? (As root it always could, and must not.)
    const cmd =
      root && setpriv
        ? ['setpriv', `--reuid=${testUid}`, `--regid=${testUid}`, '--clear-groups', '--', bwrap]
        : [bwrap];
    const t = spawnSync(
      cmd[0] as string,
      [
        ...cmd.slice(1),
        '--unshare-all',
        '--unshare-user',
        '--disable-userns',
        '--die-with-parent',
        '--ro-bind',
        '/usr',
        '/usr',
        '--symlink',
        'usr/bin',
        '/bin',
        '--symlink',
        'usr/lib',
        '/lib',
        ...(existsSync('/usr/lib64') ? ['--symlink', 'usr/lib64', '/lib64'] : []),
        '--proc',
        '/proc',
        '--dev',
        '/dev',
        '--',
        '/usr/bin/true',
      ],
      { encoding: 'utf8', timeout: 10_000 },
    );
    bwrapInfo = {
      path: bwrap,
      ok: v.status === 0,
      version: v.stdout.trim().replace(/^bubblewrap\s*/, ''),
      userns: t.status === 0,
      ...(t.status === 0
        ? {}
        : { error: (t.stderr || t.error?.message || `exit ${t.status}`).trim().slice(0, 500) }),
    };
  }
  const cgroups = probeCgroups();
  return {
    root,
    python: { path: python, ok: pythonOk, ...(pythonOk ? { version: py.stdout.trim() } : {}) },
    bwrap: bwrapInfo,
    setpriv,
    prlimit,
    cgroups,
    cgroupCaps: cgroupCapabilities(cgroups),
    seccomp: seccompSupported(),
    landlock:
      existsSync('/sys/kernel/security/landlock') ||
      (existsSync('/sys/kernel/security/lsm') && /landlock/.test(readLsm())),
    pyflakes: mods[0] === '1',
    numpy: mods[1] === '1',
    matplotlib: mods[2] === '1',
  };
}

function readLsm(): string {
  try {
    return spawnSync('cat', ['/sys/kernel/security/lsm'], { encoding: 'utf8' }).stdout;
  } catch {
    return '';
  }
}
