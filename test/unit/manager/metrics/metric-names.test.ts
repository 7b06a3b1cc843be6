import { describe, expect, it } from 'vitest';
import { MemoryTaskQueue } from '../../../../src/manager/queue/memory-task-queue.js';
import { testQueueOptions } from '../../../helpers/queue-options.js';
import { ManagerMetrics } from '../../../../src/manager/metrics/manager-metrics.js';
import type { WorkerStatusView } from '../../../../src/manager/registry/worker-registry.js';

function worker(taskCount: number, errorCount: number): WorkerStatusView {
  return {
    workerId: 'echo-host-3010',
    workerType: 'echo',
    endpoint: 'ws://127.0.0.1:3010/ws',
    port: 3010,
    status: 'online',
    capabilities: ['echo'],
    currentLoad: 0.25,
    lastHeartbeat: new Date(),
    maxConcurrency: 8,
    inFlight: 2,
    draining: false,
    version: '1',
    info: {},
    metrics: {
      workerId: 'echo-host-3010',
      taskCount,
      averageResponseTime: 12,
      successRate: 0.9,
      errorCount,
      cpuUsage: 0.1,
      memoryUsage: 1000,
      diskUsage: 0.5,
      uptime: 10,
      connectionCount: 1,
    },
  } as unknown as WorkerStatusView;
}

describe('metric names', () => {
  it('totals are _total counters, shares are _ratio gauges, labelled by the stable worker id', async () => {
    let current = worker(10, 1);
    const metrics = new ManagerMetrics(
      {
        queue: new MemoryTaskQueue(testQueueOptions()),
        workers: async () => [current],
        capabilitiesByType: () => new Map([['echo', ['echo']]]),
      },
      { defaultMetrics: false },
    );
    let text = await metrics.registry.metrics();
    expect(text).toContain('# TYPE fleet_worker_finished_tasks_total counter');
    expect(text).toContain('# TYPE fleet_worker_failed_tasks_total counter');
    expect(text).toMatch(
      /^fleet_worker_finished_tasks_total\{worker_id="echo-host-3010",worker_type="echo"\} 10$/m,
    );
    expect(text).toMatch(/^fleet_worker_failed_tasks_total\{[^}]*\} 1$/m);
    expect(text).toMatch(/^fleet_worker_success_ratio\{[^}]*\} 0\.9$/m);
    expect(text).toMatch(/^fleet_worker_load_ratio\{[^}]*\} 0\.25$/m);
    expect(text).toMatch(/^fleet_worker_cpu_ratio\{[^}]*\} 0\.1$/m);
    expect(text).toMatch(/^fleet_worker_disk_usage_ratio\{[^}]*\} 0\.5$/m);
    expect(text).not.toMatch(
      /fleet_worker_(task_count|error_count|success_rate|load|cpu_usage|disk_usage)\b/,
    );
    // Each scrape reports the registry's running total, not an increment on the last scrape.
    current = worker(15, 1);
    // One read of the fleet serves a scrape's gauges for 250 ms; the next scrape reads again.
    await new Promise((r) => setTimeout(r, 300));
    text = await metrics.registry.metrics();
    expect(text).toMatch(/^fleet_worker_finished_tasks_total\{[^}]*\} 15$/m);
    // Every counter and only counters end in _total; no gauge does.
    for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      if (m[2] === 'counter') expect(m[1]).toMatch(/_total$/);
      else expect(m[1]).not.toMatch(/_total$/);
    }
  });
});
