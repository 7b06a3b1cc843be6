// The BullMQ side's worker process for bench/manager.mjs: one Worker at the given concurrency, a no-op
// processor returning the job's data (as the echo worker does). Not a benchmark itself.
// argv: <redis url> <prefix> <queue> <concurrency>
import { Worker } from 'bullmq';

const [url, prefix, queue, concurrency] = process.argv.slice(2);
const w = new Worker(queue, async (job) => job.data, {
  connection: { url, maxRetriesPerRequest: null },
  prefix,
  concurrency: Number(concurrency),
});
await w.waitUntilReady();
process.on('message', async (m) => {
  if (m === 'stop') {
    await w.close();
    process.exit(0);
  }
});
process.send({ ready: true });
