/**
 * The store's layout check (docs/distributed.md: Upgrading). Before this version Fleet kept its own task
 * records next to BullMQ's jobs (`<prefix>:fleet:task:<id>`, `:fleet:all`, `:fleet:seq`, …); this version
 * reads tasks from the jobs alone and would not see those. A manager refuses to start on such a Redis
 * instead of silently ignoring the tasks in it.
 */
import type { Redis } from 'ioredis';
import { FleetError } from '../../../protocol/errors.js';
import type { FleetKeys } from './keys.js';

/** Keys only the previous layout wrote. */
export const OLD_LAYOUT_KEYS = ['all', 'seq', 'queued', 'finished'];

export async function assertCurrentLayout(redis: Redis, keys: FleetKeys): Promise<void> {
  const old = OLD_LAYOUT_KEYS.map((k) => `${keys.prefix}:fleet:${k}`);
  if ((await redis.exists(...old)) === 0) return;
  throw new FleetError(
    'config_invalid',
    `Redis holds tasks of the previous Fleet store layout under "${keys.prefix}:fleet:" (kept as records beside BullMQ's jobs); ` +
      'this version reads tasks from BullMQ jobs only. Let the old managers drain the queue, then clear the prefix ' +
      `(docs/distributed.md: Upgrading): redis-cli --scan --pattern '${keys.prefix}:*' | xargs -r redis-cli unlink`,
    { details: { prefix: keys.prefix } },
  );
}
