/**
 * Attack suite, part two: hostile code against what runs as root around the sandbox. The worker's own file
 * work racing a symlink flipper, the workspace quota, reaping between the tasks of a session, socket
 * families the network namespace does not cover.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { fail, hostProcessesWith, ok, sid, startPythonWorker, type Harness } from './helpers.js';

const QUOTA_MB = 16;
const QUOTA_INODES = 3000;

let h: Harness;
beforeAll(async () => {
  h = await startPythonWorker({ pool_size: 2, workspace_mb: QUOTA_MB, workspace_inodes: QUOTA_INODES });
}, 60_000);
afterAll(async () => {
  await h?.stop();
});

const run = (code: string, opts: { sessionId?: string; timeoutMs?: number; collect?: string[] } = {}) =>
  h.fm.assign(
    'python-execution',
    { code, ...(opts.collect ? { collect: opts.collect } : {}) },
    { timeoutMs: opts.timeoutMs ?? 30_000, ...(opts.sessionId ? { sessionId: opts.sessionId } : {}) },
  );
const files = (payload: Record<string, unknown>, sessionId: string) =>
  h.fm.assign('file-operations', payload, { sessionId, timeoutMs: 15_000 });

/** The tmpfs mounts under this worker's workspace, from the host's mount table. */
function workspaceMounts(): { mountPoint: string; options: string }[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((line) => line.includes(' - tmpfs '))
    .map((line) => line.split(' '))
    .filter((f) => f[4]?.startsWith(`${h.workspace}/`))
    .map((f) => ({ mountPoint: f[4] as string, options: f.slice(f.indexOf('-') + 3).join(' ') }));
}

describe('the worker never resolves a workspace path the sandbox can change', () => {
  test('a symlink flipper racing every host-facing operation never reaches a root-only canary', async () => {
    // Root-only, outside the workspace: what a root-side path walk would reach through the flipped link.
    const canaryDir = mkdtempSync(join(tmpdir(), 'fleet-canary-'));
    chmodSync(canaryDir, 0o700);
    const secret = `CANARY-${randomBytes(24).toString('hex')}`;
    const marker = `canary-name-${randomBytes(6).toString('hex')}`;
    writeFileSync(join(canaryDir, 'secret'), secret, { mode: 0o600 });
    writeFileSync(join(canaryDir, marker), secret, { mode: 0o600 });
    const canaryState = () => ({
      names: readdirSync(canaryDir).sort(),
      secret: readFileSync(join(canaryDir, 'secret'), 'utf8'),
      mtimeMs: statSync(canaryDir).mtimeMs,
    });
    const before = canaryState();
    const flipper = (dir: string) => `
import os, threading
os.makedirs("d", exist_ok=True)
with open("d/secret", "w") as f:
    f.write("inside")
def flip():
    while True:
        try:
            os.rename("d", "d_real")
            os.symlink(${JSON.stringify(dir)}, "d")
            os.unlink("d")
            os.rename("d_real", "d")
        except OSError:
            pass
threading.Thread(target=flip, name="flipper", daemon=True).start()
"flipping"`;
    const seen: string[] = [];
    const record = (answer: unknown) => seen.push(JSON.stringify(answer));
    try {
      const s = sid('race');
      ok(await run(flipper(canaryDir), { sessionId: s }));
      for (let i = 0; i < 40; i++) {
        record(await files({ op: 'read', path: 'd/secret' }, s));
        record(await files({ op: 'download', path: 'd/secret' }, s));
        record(await files({ op: 'stat', path: 'd/secret' }, s));
        record(await files({ op: 'list', path: 'd' }, s));
        record(await files({ op: 'write', path: `d/w${i}`, content: 'from the worker' }, s));
        record(await files({ op: 'upload', path: `d/u${i}`, data: Buffer.from('x').toString('base64') }, s));
        record(await files({ op: 'move', from: 'd/secret', to: 'd/moved' }, s));
        record(await files({ op: 'move', from: 'd/moved', to: 'd/secret' }, s));
        record(await files({ op: 'delete', path: `d/w${i}` }, s));
        record(await files({ op: 'mkdir', path: `d/m${i}` }, s));
      }
      // The flipper still ran the whole time (the worker did not simply stop it).
      const alive = 'import threading\n[t.name for t in threading.enumerate() if t.name == "flipper"]';
      expect(ok(await run(alive, { sessionId: s })).value).toBe("['flipper']");
      // collect of a one-shot run: the sandbox (and its flipper) is still alive while it runs.
      for (let i = 0; i < 12; i++) {
        record(await run(`${flipper(canaryDir)}\nimport time\ntime.sleep(0.01)`, { collect: ['d/secret'] }));
      }
      const all = seen.join('\n');
      expect(seen.length).toBeGreaterThan(400);
      expect(all).not.toContain(secret);
      expect(all).not.toContain(Buffer.from(secret).toString('base64').slice(0, 40));
      expect(all).not.toContain(marker);
      expect(canaryState()).toEqual(before);
    } finally {
      rmSync(canaryDir, { recursive: true, force: true });
    }
  }, 240_000);

  test('file operations never follow a symlink, even one that stays inside the workspace', async () => {
    const s = sid('links');
    ok(
      await run('import os\nos.makedirs("real")\nopen("real/f", "w").write("x")\nos.symlink("real", "in")', {
        sessionId: s,
      }),
    );
    fail(await files({ op: 'read', path: 'in/f' }, s), 'path_outside_workspace');
    expect(ok(await files({ op: 'stat', path: 'in' }, s)).type).toBe('symlink');
    ok(await files({ op: 'delete', path: 'in' }, s));
    expect(ok(await files({ op: 'read', path: 'real/f' }, s)).content).toBe('x');
  });
});

describe('workspace quota (a filesystem per workspace)', () => {
  test('every workspace is its own size- and inode-limited tmpfs', async () => {
    const s = sid('mount');
    ok(await run('1', { sessionId: s }));
    const mounts = workspaceMounts();
    expect(mounts.length).toBeGreaterThan(0);
    for (const m of mounts) {
      expect(m.options).toContain(`size=${QUOTA_MB * 1024}k`);
      expect(m.options).toContain(`nr_inodes=${QUOTA_INODES}`);
    }
  });

  test('many writers, large files, non-UTF-8 names, deep trees, hard links: workspace_full, and the host disk is untouched', async () => {
    const s = sid('quota');
    const code = `
import os, threading
os.makedirs(b"\\xff\\xfe-not-utf8", exist_ok=True)
deep = "deep"
for i in range(60):
    deep = os.path.join(deep, "d%d" % i)
os.makedirs(deep, exist_ok=True)
with open(os.path.join(deep, "f"), "wb") as f:
    f.write(b"x" * 4096)
for i in range(50):
    try:
        os.link(os.path.join(deep, "f"), "link%d" % i)
    except OSError:
        pass
pids = []
for w in range(4):
    pid = os.fork()
    if pid == 0:
        try:
            with open(b"\\xff\\xfe-not-utf8/w%d-\\x80.bin" % w, "wb") as f:
                while True:
                    f.write(b"\\xab" * (1 << 20))
        finally:
            os._exit(0)
    pids.append(pid)
def writer(n):
    with open("thread%d.bin" % n, "wb") as f:
        while True:
            f.write(b"\\xcd" * (1 << 20))
threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
for t in threads: t.start()
for t in threads: t.join()
for pid in pids: os.waitpid(pid, 0)
with open("last.bin", "wb") as f:
    f.write(b"x" * (8 << 20))
`;
    const err = fail(await run(code, { sessionId: s, timeoutMs: 60_000 }), 'workspace_full');
    expect(err.details?.sessionSurvived).toBe(true);
    expect(err.details?.workspaceBytes).toBeLessThanOrEqual(QUOTA_MB * 1024 * 1024);
    // Nothing landed on the host's own filesystem: the files are all on the workspace's tmpfs.
    const du = Number(execFileSync('du', ['-sxk', h.workspace]).toString().split(/\s/)[0]);
    expect(du).toBeLessThan(256);
    for (const m of workspaceMounts()) {
      const used = Number(
        execFileSync('df', ['-k', '--output=used', m.mountPoint]).toString().split('\n')[1],
      );
      expect(used).toBeLessThanOrEqual(QUOTA_MB * 1024);
    }
    // The next task works: the interpreter survived, and room made is room to write.
    expect(ok(await run('6 * 7', { sessionId: s })).value).toBe('42');
    ok(
      await run(
        'import shutil, os\nfor n in os.listdir("."):\n    shutil.rmtree(n) if os.path.isdir(n) else os.remove(n)',
        {
          sessionId: s,
        },
      ),
    );
    ok(await files({ op: 'write', path: 'after.txt', content: 'room again' }, s));
  }, 90_000);

  test('code that swallows ENOSPC still fails workspace_full; a file-operations write past the quota too', async () => {
    const s = sid('hidden');
    fail(
      await run(
        'try:\n    with open("big", "wb") as f:\n        while True:\n            f.write(b"x" * (1 << 20))\nexcept OSError:\n    pass\n"hidden"',
        { sessionId: s },
      ),
      'workspace_full',
    );
    fail(await files({ op: 'write', path: 'more.bin', content: 'x'.repeat(64 * 1024) }, s), 'workspace_full');
    ok(await files({ op: 'delete', path: 'big' }, s));
    ok(await files({ op: 'write', path: 'more.bin', content: 'x'.repeat(64 * 1024) }, s));
  }, 60_000);

  test('running out of inodes is workspace_full too', async () => {
    const s = sid('inodes');
    fail(
      await run(`import os\nfor i in range(${QUOTA_INODES * 2}):\n    open("f%d" % i, "w").close()`, {
        sessionId: s,
      }),
      'workspace_full',
    );
    expect(ok(await run('len(__import__("os").listdir("."))', { sessionId: s })).value).toMatch(/^\d+$/);
  }, 60_000);
});

describe('reaping between the tasks of a session', () => {
  test('a double-forked daemon does not survive its task, even with the runner reaper switched off', async () => {
    const s = sid('reap');
    const token = `4343.${process.pid}`;
    const out = ok(
      await run(
        `import os, sys, signal, time
main = sys.modules["__main__"]
main._reap = lambda: 0          # the in-sandbox reaper: switched off
main._cfg["reap"] = False
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        os.execv("/usr/bin/sleep", ["sleep", "${token}"])
    os._exit(0)
time.sleep(0.3)
"left a daemon"`,
        { sessionId: s },
      ),
    );
    expect(out.killedProcesses).toBeGreaterThanOrEqual(1);
    expect(hostProcessesWith(token)).toEqual([]);
    // The next task sees only the sandbox's pid 1 and the interpreter itself.
    const seen = ok(
      await run(
        'import os\nsorted(int(p) for p in os.listdir("/proc") if p.isdigit() and open("/proc/%s/stat" % p).read().split(") ")[1][0] != "Z")',
        { sessionId: s },
      ),
    );
    expect(seen.value).toBe('[1, 2]');
  }, 60_000);
});

describe('the sandbox does not see the host', () => {
  test('only unix, inet and inet6 sockets can be opened', async () => {
    const out = ok(
      await run(`import ctypes, errno
libc = ctypes.CDLL(None, use_errno=True)
opened, refused = [], {}
for family in range(0, 46):
    for kind in (1, 2, 3, 5):
        fd = libc.socket(family, kind, 0)
        if fd >= 0:
            opened.append((family, kind))
            libc.close(fd)
        else:
            e = ctypes.get_errno()
            refused.setdefault(family, set()).add(e)
    fds = (ctypes.c_int * 2)()
    if libc.socketpair(family, 1, 0, fds) == 0:
        opened.append((family, "pair"))
        libc.close(fds[0]); libc.close(fds[1])
# A family number past 32 bits is still checked on the int the kernel uses.
fd = libc.syscall(41, ctypes.c_long((1 << 32) | 16), 3, 0)
(sorted({f for f, _ in opened}), sorted(refused[16]), sorted(refused[40]), fd)`),
    );
    const [families, netlinkErrnos, vsockErrnos, wideFd] = JSON.parse(
      String(out.value).replace(/\(/g, '[').replace(/\)/g, ']'),
    ) as [number[], number[], number[], number];
    expect(families.every((f) => [1, 2, 10].includes(f))).toBe(true);
    expect(families).toContain(1);
    expect(netlinkErrnos).toEqual([97]);
    expect(vsockErrnos).toEqual([97]);
    expect(wideFd).toBe(-1);
  });

  test('no host path of the worker shows in the sandbox mount table', async () => {
    const out = ok(await run('print(open("/proc/self/mountinfo").read())'));
    expect(out.stdout).toContain('/workspace');
    expect(out.stdout).not.toContain(h.workspace);
    expect(out.stdout).not.toContain('fleet-py-');
    // The root field (4th) of a bind names the source path on the host filesystem.
    const roots = (out.stdout as string).split('\n').map((l) => l.split(' ')[3] ?? '');
    expect(roots.filter((r) => r.startsWith('/tmp/'))).toEqual([]);
  });

  test('the hostname is fleet-sandbox', async () => {
    const out = ok(await run('import socket\nsocket.gethostname()'));
    expect(out.value).toBe("'fleet-sandbox'");
  });
});
