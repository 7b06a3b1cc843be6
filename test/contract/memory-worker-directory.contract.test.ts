import { MemoryWorkerDirectory } from '../../src/manager/registry/memory-worker-directory.js';
import { describeWorkerDirectoryContract } from './worker-directory.contract.js';

describeWorkerDirectoryContract('memory', async () => {
  // Expiry is by clock: a test's "wait" moves this clock instead of sleeping.
  let now = 1_000_000;
  const directory = new MemoryWorkerDirectory(() => now);
  return {
    directory,
    elapse: async (ms: number) => {
      now += ms;
    },
  };
});
