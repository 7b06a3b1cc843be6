/**
 * Two python-sandbox workers on one host, as real processes of the built CLI: their sandbox uids never
 * overlap, and a SIGTERM (or SIGINT) to each leaves nothing behind: no sandbox process, no directory, no
 * workspace mount, no cgroup, no runtime temp directory, no uid lock.
 */
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { connectFakeManager, type FakeManager } from '../../../helpers/fake-manager.js';
import { spawnWorker, waitFor, type WorkerProcess } from '../../../helpers/processes.js';
import { ok, sid } from './helpers.js';

const dirs: string[] = [];
const workers: WorkerProcess[] = [];
afterAll(async () => {
  // A failed test must not leave its workers running.
  for (const w of workers) {
    if (w.proc.exitCode === null) {
      w.kill('SIGTERM');
      await w.exited;
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

interface Started {
  worker: WorkerProcess;
  fm: FakeManager;
  workspace: string;
  uids: { first: number; count: number };
}

async function start(): Promise<Started> {
  const dir = mkdtempSync(join(tmpdir(), 'fleet-two-'));
  dirs.push(dir);
  chmodSync(dir, 0o711); // sandbox uids pass through to their own directories
  const workspace = join(dir, 'ws');
  const file = join(dir, 'fleet.yaml');
  writeFileSync(
    file,
    `python_sandbox:\n  workspace: ${workspace}\n  sandbox:\n    pool_size: 1\n    max_sessions: 4\n`,
  );
  const worker = await spawnWorker('python-sandbox', { args: ['-c', file] });
  workers.push(worker);
  const res = await fetch(`http://127.0.0.1:${worker.port}/health`);
  const health = (await res.json()) as { info?: { uids?: unknown } };
  const uids = health.info?.uids as { first: number; count: number } | undefined;
  if (!uids) throw new Error(`no uid block on /health: ${JSON.stringify(health).slice(0, 1000)}`);
  const fm = await connectFakeManager(worker.endpoint);
  return { worker, fm, workspace, uids };
}

function processesWithUidIn(first: number, count: number): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${name}/status`, 'utf8'))?.[1]);
      if (uid >= first && uid < first + count) found.push(Number(name));
    } catch {
      // gone
    }
  }
  return found;
}

function processesInGroupsOf(workerPid: number): number[] {
  const found: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/cgroup`, 'utf8').includes(`/fleet-py-${workerPid}-`))
        found.push(Number(name));
    } catch {
      // gone
    }
  }
  return found;
}

function leftovers(pid: number, s: Started): string[] {
  const left: string[] = [];
  if (existsSync(s.workspace))
    left.push(
      ...readdirSync(s.workspace)
        .filter((n) => n.startsWith('sbx-'))
        .map((n) => `dir ${n}`),
    );
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const mountPoint = line.split(' ')[4];
    if (mountPoint?.startsWith(`${s.workspace}/`)) left.push(`mount ${mountPoint}`);
  }
  for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
    const dir = join('/sys/fs/cgroup', hierarchy);
    try {
      for (const n of readdirSync(dir))
        if (n.startsWith(`fleet-py-${pid}-`)) left.push(`cgroup ${hierarchy}/${n}`);
    } catch {
      // not a directory
    }
  }
  left.push(
    ...readdirSync(tmpdir())
      .filter((n) => n.startsWith(`fleet-py-${pid}-`))
      .map((n) => `tmp ${n}`),
  );
  // By cgroup, not by uid: once released, the uid block may already serve another worker starting now.
  left.push(...processesInGroupsOf(pid).map((p) => `process ${p}`));
  const locks = '/run/fleet-python-sandbox';
  if (existsSync(locks)) {
    for (const n of readdirSync(locks)) {
      const holder = readFileSync(join(locks, n), 'utf8').split(' ')[0];
      if (holder === String(pid)) left.push(`uid lock ${n}`);
    }
  }
  return left;
}

describe('two python-sandbox workers on one host', () => {
  test("disjoint sandbox uids, and each one's SIGTERM/SIGINT leaves nothing behind", async () => {
    const a = await start();
    const b = await start();
    const { first: fa, count: ca } = a.uids;
    const { first: fb, count: cb } = b.uids;
    expect(fa + ca <= fb || fb + cb <= fa).toBe(true);
    const seen = { a: new Set<number>(), b: new Set<number>() };
    for (const [name, w] of [
      ['a', a],
      ['b', b],
    ] as const) {
      for (let i = 0; i < 3; i++) {
        const out = ok(
          await w.fm.assign(
            'python-execution',
            // A live session with a running thread and files: what a stop has to take down.
            {
              code: 'import os, threading, time\nthreading.Thread(target=time.sleep, args=(600,), daemon=True).start()\nopen("f", "w").write("x")\nos.getuid()',
            },
            { sessionId: sid(`two-${name}`), timeoutMs: 30_000 },
          ),
        );
        seen[name].add(Number(out.value));
      }
      ok(await w.fm.assign('python-execution', { code: '1' }, { timeoutMs: 30_000 }));
    }
    for (const uid of seen.a) expect(uid >= fa && uid < fa + ca).toBe(true);
    for (const uid of seen.b) expect(uid >= fb && uid < fb + cb).toBe(true);
    expect([...seen.a].filter((u) => seen.b.has(u))).toEqual([]);
    expect(processesWithUidIn(fa, ca).length).toBeGreaterThan(0);

    for (const [w, signal] of [
      [a, 'SIGTERM'],
      [b, 'SIGINT'],
    ] as const) {
      const pid = w.worker.proc.pid as number;
      await w.fm.close().catch(() => undefined);
      w.worker.kill(signal);
      await w.worker.exited;
      // A killed process leaves the process table a moment after its parent saw the exit.
      await waitFor(() => leftovers(pid, w).length === 0, 5_000, 'cleanup').catch(() => undefined);
      expect(leftovers(pid, w), w.worker.output().slice(-2000)).toEqual([]);
      expect(w.worker.proc.exitCode).toBe(0);
    }
  }, 180_000);
});
