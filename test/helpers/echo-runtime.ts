import { pino } from 'pino';
import { WORKER_DEFAULTS, workerSection } from '../../src/config/schema.js';
import { WorkerMetrics } from '../../src/workers/common/metrics.js';
import { WorkerRuntime } from '../../src/workers/common/worker-runtime.js';
import { createEchoKind } from '../../src/workers/echo/index.js';

/** An echo worker's runtime for in-process fleets (linked through MockWebSocketWorkerInterface), silent. */
export function echoRuntime(workerId: string, maxConcurrency: number): WorkerRuntime {
  const section = workerSection(WORKER_DEFAULTS.echo).parse({ max_concurrent_tasks: maxConcurrency });
  return new WorkerRuntime({
    kind: createEchoKind(section),
    config: section,
    workerId,
    logger: pino({ level: 'silent' }),
    metrics: new WorkerMetrics({ workerType: 'echo', workerId }),
    maxFrameBytes: 1024 * 1024,
  });
}
