/**
 * `manager.subscribe(listener, options)`: a subscriber gets the event types it asked for, and with
 * `workerUpdates: 'changes'` a worker's `updated` events only when its status changed — so a manager whose
 * permanent subscribers (dashboard, MCP gateway) want no more builds no worker view for every dispatch,
 * result and heartbeat.
 */
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { WorkerManager, type ManagerEvent } from '../../../src/manager/manager.js';
import { WorkerServer } from '../../../src/workers/common/server.js';
import { createEchoKind } from '../../../src/workers/echo/index.js';
import { waitFor } from '../../helpers/processes.js';

const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop();
});

async function fleet(maxConcurrency: number) {
  const config = parseConfig({
    manager: { port: 0, log_level: 'silent', health: { heartbeat_interval: '100ms' } },
    echo: { port: 0, max_concurrent_tasks: maxConcurrency },
  });
  const silent = pino({ level: 'silent' });
  const worker = new WorkerServer({ kind: createEchoKind(config.echo), config: config.echo, logger: silent });
  await worker.start();
  stops.push(() => worker.stop());
  const manager = new WorkerManager(config, { logger: silent });
  stops.push(() => manager.stop());
  return { manager, worker };
}

const workerEvents = (events: ManagerEvent[]) =>
  events.flatMap((e) => (e.type === 'worker' ? [`${e.kind}:${e.worker.status}`] : []));

describe('manager.subscribe with options', () => {
  it('a subscriber of status changes sees a worker register and go busy and back, not every update', async () => {
    const { manager, worker } = await fleet(1);
    const all: ManagerEvent[] = [];
    const changes: ManagerEvent[] = [];
    const catalog: ManagerEvent[] = [];
    stops.push(async () => {
      offAll();
      offChanges();
      offCatalog();
    });
    const offAll = manager.subscribe((e) => all.push(e));
    const offChanges = manager.subscribe((e) => changes.push(e), { workerUpdates: 'changes' });
    const offCatalog = manager.subscribe((e) => catalog.push(e), { types: ['catalog'] });
    await manager.start();
    await manager.registerWorker({ endpoint: worker.endpoint });
    await waitFor(() => manager.localWorkers().some((w) => w.status === 'online'), 10_000, 'worker online');
    for (let i = 0; i < 3; i++) await manager.executeTask({ capability: 'echo', payload: { i } });
    // Heartbeats every 100 ms: updates without a status change.
    await new Promise((r) => setTimeout(r, 350));

    const allWorker = workerEvents(all);
    const changed = workerEvents(changes);
    expect(allWorker[0]).toBe('registered:online');
    expect(changed[0]).toBe('registered:online');
    // Every update reaches the first; the second sees the status changes only, in the same order.
    expect(allWorker.length).toBeGreaterThan(changed.length + 3);
    // Whenever the registry reports an update, the status it shows: the same story, without the repeats.
    expect(changed).toContain('updated:busy');
    const collapsed = allWorker.filter(
      (s, i) => i === 0 || s.split(':')[1] !== allWorker[i - 1]!.split(':')[1],
    );
    expect(collapsed).toEqual(changed);
    // Task events go to both, in full; the catalog subscriber gets catalog events only.
    const tasks = (events: ManagerEvent[]) => events.filter((e) => e.type === 'task').length;
    expect(tasks(changes)).toBe(tasks(all));
    expect(tasks(all)).toBeGreaterThanOrEqual(3 * 3);
    expect(catalog.length).toBeGreaterThan(0);
    expect(catalog.every((e) => e.type === 'catalog')).toBe(true);
    expect(all.filter((e) => e.type === 'catalog')).toEqual(catalog);
  });

  it('a worker with room, running tasks one at a time, changes no status: no worker event for such a subscriber', async () => {
    const { manager, worker } = await fleet(4);
    await manager.start();
    await manager.registerWorker({ endpoint: worker.endpoint });
    await waitFor(() => manager.localWorkers().some((w) => w.status === 'online'), 10_000, 'worker online');
    const events: ManagerEvent[] = [];
    const off = manager.subscribe((e) => events.push(e), { types: ['worker'], workerUpdates: 'changes' });
    stops.push(async () => off());
    for (let i = 0; i < 5; i++) await manager.executeTask({ capability: 'echo', payload: { i } });
    await new Promise((r) => setTimeout(r, 250));
    expect(events).toEqual([]);
  });
});
