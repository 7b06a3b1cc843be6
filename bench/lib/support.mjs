// What several benchmarks need besides the thing they measure. Not a benchmark itself: `bench/run.mjs`
// runs only the files directly in bench/.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Write-family syscalls (write, writev, sendmsg…) a process has made so far (`syscw` of /proc/<pid>/io):
 * each socket send is one, and wakes the process that reads it. NaN where /proc cannot tell (not Linux, the
 * process gone).
 */
export function writeCalls(pid = 'self') {
  try {
    return Number(/syscw:\s*(\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))?.[1]);
  } catch {
    return NaN;
  }
}

/**
 * `fleet <args>` from the build in dist/, quiet but for errors. Run from the repository's root. `nodeArgs`
 * go to node itself (`--cpu-prof` cannot go through NODE_OPTIONS).
 */
export function fleetProcess(args, env = {}, nodeArgs = []) {
  return spawn(process.execPath, [...nodeArgs, 'dist/cli/main.js', ...args], {
    stdio: 'ignore',
    env: { ...process.env, FLEET_LOG_LEVEL: 'error', ...env },
  });
}

/** A loopback port that was free a moment ago. */
export function freePort() {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Polls `check` until it returns something truthy (which is returned); a thrown error counts as not yet. */
export async function until(check, what, ms = 30_000, every = 50) {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(every);
  }
}

/** Deletes every key matching `pattern` (a SCAN pattern such as `prefix:*`). */
export async function deleteKeys(redisUrl, pattern) {
  const client = new Redis(redisUrl);
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await client.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
}
