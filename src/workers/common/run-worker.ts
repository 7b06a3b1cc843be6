/**
 * The process wrapper behind `fleet worker <kind>`: start a WorkerServer, log where it listens, and turn
 * SIGTERM/SIGINT into a graceful drain (Kubernetes sends SIGTERM, then SIGKILL after the grace period).
 * A second signal skips the drain and stops at once.
 */
import type { WorkerSectionConfig } from '../../config/schema.js';
import { createLogger } from './logger.js';
import { WorkerServer, type WorkerServerOptions } from './server.js';
import type { WorkerKind } from './worker-kind.js';

export interface RunWorkerOptions extends Omit<WorkerServerOptions, 'kind' | 'config'> {
  config: WorkerSectionConfig;
  /** Signals that start the drain. @default ['SIGTERM', 'SIGINT'] */
  signals?: NodeJS.Signals[];
  /** How the process ends; tests replace it. @default process.exit */
  exit?: (code: number) => void;
}

export async function runWorker(kind: WorkerKind, options: RunWorkerOptions): Promise<WorkerServer> {
  const { signals = ['SIGTERM', 'SIGINT'], exit = (code: number) => process.exit(code), ...rest } = options;
  const logger = rest.logger ?? createLogger(`fleet-worker-${kind.type}`);
  const server = new WorkerServer({ ...rest, kind, logger });
  await server.start();
  logger.info(
    {
      endpoint: server.endpoint,
      workerId: server.workerId,
      capabilities: server.capabilities,
      maxConcurrency: options.config.max_concurrent_tasks,
      manager: options.managerUrl,
    },
    `${kind.type} worker listening on ${server.endpoint}`,
  );

  let signalled = 0;
  let exited = false;
  const finish = (code: number) => {
    if (exited) return;
    exited = true;
    detach();
    exit(code);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    signalled++;
    if (signalled === 1) {
      logger.info(
        { signal, inFlight: server.inFlight },
        'draining before exit (send the signal again to stop now)',
      );
      void (async () => {
        const finished = await server.drain();
        if (!finished)
          logger.warn({ inFlight: server.inFlight }, 'drain timed out; stopping the remaining tasks');
        await server.stop();
        finish(0);
      })();
      return;
    }
    if (signalled === 2) {
      logger.warn({ signal }, 'second signal: stopping now');
      void server.stop({ graceMs: 1_000 }).finally(() => finish(1));
    }
  };
  const detach = () => {
    for (const signal of signals) process.off(signal, onSignal);
  };
  for (const signal of signals) process.on(signal, onSignal);
  return server;
}
