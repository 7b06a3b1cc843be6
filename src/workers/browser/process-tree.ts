/**
 * Linux process facts for the pool. Chromium is a tree (browser, zygotes, renderers, GPU/utility) in one process
 * group (Playwright spawns it detached), so the group is the unit: its PSS is the instance's memory (a sum of RSS
 * counts shared pages several times over), and a forced stop kills the whole group at once.
 */
import { readdir, readFile } from 'node:fs/promises';

interface ProcStat {
  pid: number;
  ppid: number;
  pgrp: number;
  state: string;
}

async function readStat(pid: number): Promise<ProcStat | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses; the fields after the last ')' are fixed.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { pid, state: rest[0] ?? '?', ppid: Number(rest[1]), pgrp: Number(rest[2]) };
  } catch {
    return undefined;
  }
}

async function allPids(): Promise<number[]> {
  try {
    const names = await readdir('/proc');
    return names.filter((n) => /^\d+$/.test(n)).map(Number);
  } catch {
    return [];
  }
}

/** Live (non-zombie) members of a process group. */
export async function groupMembers(pgid: number): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await allPids()) {
    const st = await readStat(pid);
    if (st && st.pgrp === pgid && st.state !== 'Z') out.push(pid);
  }
  return out;
}

async function pssKb(pid: number): Promise<number> {
  try {
    const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
    const m = /^Pss:\s+(\d+)\s+kB/m.exec(text);
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Proportional set size of a process group, in bytes. */
export async function groupPssBytes(pgid: number): Promise<number> {
  let kb = 0;
  for (const pid of await groupMembers(pgid)) kb += await pssKb(pid);
  return kb * 1024;
}

/** PSS of one process and all its descendants, in bytes (the worker's own footprint with its browsers). */
export async function treePssBytes(root: number): Promise<number> {
  const stats = (await Promise.all((await allPids()).map(readStat))).filter(
    (s): s is ProcStat => s !== undefined,
  );
  const children = new Map<number, number[]>();
  for (const s of stats) {
    const list = children.get(s.ppid) ?? [];
    list.push(s.pid);
    children.set(s.ppid, list);
  }
  let kb = 0;
  const stack = [root];
  const seen = new Set<number>();
  while (stack.length) {
    const pid = stack.pop()!;
    if (seen.has(pid)) continue;
    seen.add(pid);
    kb += await pssKb(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return kb * 1024;
}

/** SIGKILL to the whole group; a group already gone is fine. */
export function killGroup(pgid: number): void {
  if (!Number.isInteger(pgid) || pgid <= 1) return;
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // ESRCH: nothing left to kill.
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Pids of direct children of `parent` whose command line contains `marker` (finds the browser Playwright spawned). */
export async function findChildByMarker(parent: number, marker: string): Promise<number | undefined> {
  for (const pid of await allPids()) {
    const st = await readStat(pid);
    if (!st || st.ppid !== parent) continue;
    try {
      const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8');
      if (cmd.includes(marker)) return pid;
    } catch {
      // raced with exit
    }
  }
  return undefined;
}

/**
 * Live pids whose command line or environment contains `marker`. Every Chromium process inherits the
 * environment the pool gives the browser (`FLEET_BROWSER_DIR=<its dir>`), renderers included, so this finds a
 * whole tree even after its parent died.
 */
export async function processesMatching(marker: string): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await allPids()) {
    if (pid === process.pid) continue;
    try {
      const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8');
      const env = cmd.includes(marker) ? '' : await readFile(`/proc/${pid}/environ`, 'utf8').catch(() => '');
      if (!cmd.includes(marker) && !env.includes(marker)) continue;
      const st = await readStat(pid);
      if (st && st.state !== 'Z') out.push(pid);
    } catch {
      // raced with exit
    }
  }
  return out;
}
