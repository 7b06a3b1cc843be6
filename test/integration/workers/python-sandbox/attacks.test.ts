/**
 * The attack suite: hostile payloads against the real sandbox. Each is bounded by its task timeout and must
 * be contained and answered with the right code, while the other slots keep serving.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { fail, hostProcessesWith, ok, sid, startPythonWorker, type Harness } from './helpers.js';

let h: Harness;
beforeAll(async () => {
  h = await startPythonWorker({ pool_size: 2 });
}, 60_000);
afterAll(async () => {
  await h?.stop();
});

const run = (code: string, opts: { sessionId?: string; timeoutMs?: number } = {}) =>
  h.fm.assign(
    'python-execution',
    { code },
    { timeoutMs: opts.timeoutMs ?? 20_000, ...(opts.sessionId ? { sessionId: opts.sessionId } : {}) },
  );

describe('attack suite', () => {
  test('cannot read /etc/shadow or /root', async () => {
    const out = ok(
      await run(
        'import os\nr = []\nfor p in ("/etc/shadow", "/root/.bashrc"):\n    try:\n        open(p).read(); r.append("READ " + p)\n    except Exception as e:\n        r.append(type(e).__name__)\nr.append(os.path.exists("/root"))\nr',
      ),
    );
    expect(out.value).not.toContain('READ');
    expect(out.value).toContain('False');
  });

  test('cannot write outside the workspace', async () => {
    const marker = `/tmp/fleet-escape-${process.pid}`;
    const out = ok(
      await run(
        `r = []\nfor p in ("/usr/evil", "/etc/evil", "${marker}", "/evil"):\n    try:\n        open(p, "w").write("x"); r.append("WROTE " + p)\n    except Exception as e:\n        r.append(type(e).__name__)\nr`,
      ),
    );
    // /tmp inside is a private tmpfs: the write may succeed there, but never reaches the host.
    expect(existsSync(marker)).toBe(false);
    expect(out.value).not.toContain('WROTE /usr');
    expect(out.value).not.toContain('WROTE /etc');
    expect(out.value).not.toContain('WROTE /evil');
    expect(existsSync('/usr/evil')).toBe(false);
    expect(existsSync('/etc/evil')).toBe(false);
  });

  test('cannot connect to a listener on the host loopback', async () => {
    let connections = 0;
    const server: Server = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const out = ok(
        await run(
          `import socket\ntry:\n    socket.create_connection(("127.0.0.1", ${port}), timeout=2); r = "CONNECTED"\nexcept Exception as e:\n    r = type(e).__name__\nr`,
        ),
      );
      expect(out.value).not.toContain('CONNECTED');
      expect(connections).toBe(0);
    } finally {
      server.close();
    }
  });

  test('nested user namespaces are refused', async () => {
    const out = ok(
      await run(
        'import ctypes, subprocess\nlibc = ctypes.CDLL(None, use_errno=True)\nrc = libc.unshare(0x10000000)\np = subprocess.run(["/usr/bin/unshare", "-U", "true"], capture_output=True)\n(rc, p.returncode)',
      ),
    );
    expect(out.value).toMatch(/^\(-1, [1-9]\d*\)$/);
  });

  test('a symlink escape through file-operations is refused', async () => {
    const s = sid('link');
    ok(
      await run('import os\nos.symlink("/etc", "etc")\nos.symlink("/etc/passwd", "pw")\nos.mkfifo("fifo")', {
        sessionId: s,
      }),
    );
    for (const path of ['etc/passwd', 'pw', '../../../etc/passwd', '/etc/passwd', 'fifo']) {
      fail(
        await h.fm.assign('file-operations', { op: 'read', path }, { sessionId: s, timeoutMs: 10_000 }),
        'path_outside_workspace',
      );
    }
    fail(
      await h.fm.assign(
        'file-operations',
        { op: 'write', path: 'etc/evil', content: 'x' },
        { sessionId: s, timeoutMs: 10_000 },
      ),
      'path_outside_workspace',
    );
    expect(existsSync('/etc/evil')).toBe(false);
  });

  test('a process that daemonizes does not outlive its task', async () => {
    const s = sid('daemon');
    const token = `4242.${process.pid}`;
    const code = `import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        os.execv("/usr/bin/sleep", ["sleep", "${token}"])\n    os._exit(0)\nimport time\ntime.sleep(0.3)\nprint("parent done")`;
    ok(await run(code, { sessionId: s }));
    expect(hostProcessesWith(token)).toEqual([]);
    // One-shot: the whole sandbox goes.
    ok(await run(code));
    expect(hostProcessesWith(token)).toEqual([]);
  });

  test('the contained attacks run while the other slots keep serving', async () => {
    const bomb = run(
      'import os, time\nfor i in range(100000):\n    try:\n        os.fork()\n    except OSError:\n        break\ntime.sleep(0.5)',
      { timeoutMs: 20_000 },
    );
    const hog = run('b = b"x" * (2 * 1024 ** 3)\nlen(b)', { timeoutMs: 30_000 });
    const spin = run('while True:\n    pass', { timeoutMs: 3_000 });
    const served: number[] = [];
    const steady = (async () => {
      const s = sid('steady');
      for (let i = 0; i < 8; i++) {
        const t = Date.now();
        const out = ok(await run(`${i} * 2`, { sessionId: s }));
        expect(out.value).toBe(String(i * 2));
        served.push(Date.now() - t);
      }
    })();
    const [bombAnswer, hogAnswer, spinAnswer] = await Promise.all([bomb, hog, spin, steady]);
    fail(bombAnswer, 'process_limit');
    fail(hogAnswer, 'oom_killed');
    const spinErr = fail(spinAnswer, 'timeout');
    expect(spinErr.details?.sessionSurvived).toBe(true);
    expect(served).toHaveLength(8);
  }, 60_000);

  test('a 1 GB file is stopped at the file size limit', async () => {
    const err = fail(
      await run(
        'with open("big.bin", "wb") as f:\n    for _ in range(1024):\n        f.write(b"\\0" * (1024 * 1024))',
        { timeoutMs: 30_000 },
      ),
      'file_too_large',
    );
    expect(JSON.stringify(err.details)).toContain('File too large');
  }, 40_000);

  test('no sandbox process or cgroup is left once the worker stops', async () => {
    const groupsOfThisProcess = () =>
      ['/sys/fs/cgroup/pids', '/sys/fs/cgroup/unified']
        .flatMap((d) => (existsSync(d) ? readdirSync(d) : []))
        .filter((n) => n.startsWith(`fleet-py-${process.pid}-`)).length;
    // Runners of this test process, found as its descendants while they live; other test files run their
    // own sandboxes meanwhile. A leak is then caught by pid, even if the runner was re-parented away.
    const myRunnerPids = () => {
      const rows = execFileSync('ps', ['-e', '-o', 'pid=,ppid=,args='])
        .toString()
        .split('\n')
        .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l))
        .filter((m): m is RegExpExecArray => m !== null)
        .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), args: m[3]! }));
      const mine = new Set([process.pid]);
      for (let grew = true; grew;) {
        grew = false;
        for (const r of rows) if (mine.has(r.ppid) && !mine.has(r.pid)) grew = Boolean(mine.add(r.pid));
      }
      return rows.filter((r) => mine.has(r.pid) && r.args.includes('/opt/fleet/runner.py')).map((r) => r.pid);
    };
    // Running or sleeping; a zombie (exited, not yet reaped by its parent) holds nothing and counts as gone.
    const alive = (pid: number) => {
      try {
        return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').pop()?.[0] !== 'Z';
      } catch {
        return false;
      }
    };
    // The suite's own worker refills its warm pool after each earlier test; a runner it starts while this
    // test counts would look like one of `other`'s. Let that pool settle first.
    const poolSettled = async () => {
      const body = (await (await fetch(`${h.baseUrl}/health`)).json()) as unknown;
      const pool = JSON.stringify(body).match(
        /"pool":\{"ready":(\d+),"target":(\d+),"filling":(true|false)\}/,
      );
      return pool !== null && pool[1] === pool[2] && pool[3] === 'false';
    };
    for (const until = Date.now() + 30_000; !(await poolSettled());) {
      if (Date.now() > until) throw new Error("the suite worker's pool never settled");
      await new Promise((r) => setTimeout(r, 50));
    }
    const groupsBefore = groupsOfThisProcess();
    const runnersBefore = new Set(myRunnerPids());
    const other = await startPythonWorker({ pool_size: 1 });
    const s = sid('left');
    ok(
      await other.fm.assign(
        'python-execution',
        { code: 'import subprocess\nsubprocess.Popen(["sleep", "30"])\nx = 1' },
        { sessionId: s, timeoutMs: 20_000 },
      ),
    );
    const started = myRunnerPids().filter((pid) => !runnersBefore.has(pid));
    expect(started.length).toBeGreaterThan(0);
    const ws = other.workspace;
    await other.stop();
    expect(existsSync(ws)).toBe(false);
    expect(groupsOfThisProcess()).toBeLessThanOrEqual(groupsBefore);
    expect(started.filter(alive)).toEqual([]);
    expect(myRunnerPids().filter((pid) => !runnersBefore.has(pid))).toEqual([]);
  }, 60_000);
});
