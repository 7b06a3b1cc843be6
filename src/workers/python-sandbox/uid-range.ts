/**
 * Sandbox uids per worker. Two workers on one host must never hand out the same uid: processes of one
 * uid can signal each other and share the per-uid RLIMIT_NPROC. The configured range (`uid_base`,
 * `uid_count`) is cut into blocks; a worker claims one block with a lock file (O_EXCL, holding its pid
 * and a random token) and checks at start that no process on the host runs with a uid of that block. A
 * lock whose pid is dead is taken over. Released at stop.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FleetError } from '../../protocol/errors.js';
import { pidAlive } from './proc-stats.js';

export interface UidLease {
  first: number;
  count: number;
  block: number;
  lockFile: string;
  release(): void;
}

/** Where the locks live: one directory per host (root) or per user. */
export function defaultLockDir(): string {
  return process.getuid?.() === 0
    ? '/run/fleet-python-sandbox'
    : join(tmpdir(), `fleet-python-sandbox-${process.getuid?.() ?? 0}`);
}

/** Uids (real, effective, saved, fs) of every process on the host. */
export function uidsInUse(): Set<number> {
  const uids = new Set<number>();
  let names: string[] = [];
  try {
    names = readdirSync('/proc');
  } catch {
    return uids;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const line = /^Uid:\s+(.*)$/m.exec(readFileSync(`/proc/${name}/status`, 'utf8'))?.[1] ?? '';
      for (const uid of line.trim().split(/\s+/)) uids.add(Number(uid));
    } catch {
      // exited meanwhile
    }
  }
  return uids;
}

export function claimUidRange(options: {
  base: number;
  total: number;
  perWorker: number;
  lockDir?: string;
}): UidLease {
  const perWorker = Math.max(1, Math.min(options.perWorker, options.total));
  const blocks = Math.floor(options.total / perWorker);
  const dir = options.lockDir ?? defaultLockDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const token = `${process.pid} ${randomUUID()}`;
  const busy = uidsInUse();
  const skipped: string[] = [];
  for (let block = 0; block < blocks; block++) {
    const first = options.base + block * perWorker;
    const lockFile = join(dir, `uids-${options.base}-${perWorker}-${block}.lock`);
    if (!tryLock(lockFile, token)) continue;
    const clash = [...busy].find((uid) => uid >= first && uid < first + perWorker);
    if (clash !== undefined) {
      // Someone outside our locks (another tool, an old worker) runs with a uid of this block.
      skipped.push(`block ${block}: uid ${clash} is in use`);
      release(lockFile, token);
      continue;
    }
    return { first, count: perWorker, block, lockFile, release: () => release(lockFile, token) };
  }
  throw new FleetError(
    'sandbox_unavailable',
    `every block of ${perWorker} sandbox uids in ${options.base}..${options.base + options.total - 1} is taken by another worker on this host${skipped.length ? ` (${skipped.join('; ')})` : ''}; raise python_sandbox.sandbox.uid_count or use another uid_base`,
  );
}

function tryLock(lockFile: string, token: string): boolean {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(lockFile, token, { flag: 'wx', mode: 0o600 });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder = '';
    try {
      holder = readFileSync(lockFile, 'utf8');
    } catch {
      continue; // released meanwhile: try again
    }
    const pid = Number(holder.split(' ')[0]);
    if (Number.isInteger(pid) && pid > 0 && pidAlive(pid)) return false;
    // Stale: move it aside (one taker wins the rename), then create ours with O_EXCL. Had another
    // taker already replaced it with a fresh lock, what we moved is theirs: put it back.
    const aside = `${lockFile}.stale-${process.pid}-${randomUUID()}`;
    try {
      renameSync(lockFile, aside);
      if (readFileSync(aside, 'utf8') !== holder) {
        renameSync(aside, lockFile);
        return false;
      }
      unlinkSync(aside);
    } catch {
      return false;
    }
  }
  return false;
}

function release(lockFile: string, token: string): void {
  try {
    if (readFileSync(lockFile, 'utf8') === token) unlinkSync(lockFile);
  } catch {
    // already gone
  }
}
