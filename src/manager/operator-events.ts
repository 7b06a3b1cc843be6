/**
 * What an operator needs to see besides tasks and workers: the autoscaler's decisions and the alerts raised
 * outside the manager core (a supervised worker parked after a crash loop). Both come from `fleet up`'s
 * supervisor side, flow through the manager's event stream like every other event, and the last few are kept
 * so `GET /api/scaling` and `GET /api/alerts` can answer "why" after the fact.
 */
import type { ScalingDecision } from './scaling/autoscaler.js';

export interface ScalingEvent {
  type: 'scaling';
  decision: ScalingDecision;
}

export const ALERT_LEVELS = ['error', 'warning'] as const;
export type AlertLevel = (typeof ALERT_LEVELS)[number];

/** Alerts raised from outside the dashboard's own computation. */
export const PUBLISHED_ALERT_KINDS = [
  'worker_parked',
  'duplicate_worker',
  'store_corrupt',
  'capability_refused',
] as const;
export type PublishedAlertKind = (typeof PUBLISHED_ALERT_KINDS)[number];

export interface AlertEvent {
  type: 'alert';
  /** Epoch ms. */
  at: number;
  level: AlertLevel;
  kind: PublishedAlertKind;
  /** Same key = same condition: a later event with `resolved: true` and this key ends it. */
  key: string;
  message: string;
  workerType?: string;
  workerId?: string;
  endpoint?: string;
  resolved?: boolean;
}

export type OperatorEvent = ScalingEvent | AlertEvent;

export interface OperatorEventLogOptions {
  /** Changes and refusals kept (holds are kept only as the latest per type). @default 200 */
  decisions?: number;
  /** Alert events kept, raised and resolved. @default 200 */
  alerts?: number;
}

export class OperatorEventLog {
  private readonly decisions: ScalingDecision[] = [];
  private readonly latestByType = new Map<string, ScalingDecision>();
  private readonly alerts: AlertEvent[] = [];
  private readonly active = new Map<string, AlertEvent>();
  private readonly maxDecisions: number;
  private readonly maxAlerts: number;

  constructor(options: OperatorEventLogOptions = {}) {
    this.maxDecisions = options.decisions ?? 200;
    this.maxAlerts = options.alerts ?? 200;
  }

  record(event: OperatorEvent): void {
    if (event.type === 'scaling') {
      const d = event.decision;
      this.latestByType.set(d.workerType, d);
      // A hold every tick per type would push every change out of a bounded list within minutes.
      if (d.action !== 'hold') push(this.decisions, d, this.maxDecisions);
      return;
    }
    push(this.alerts, event, this.maxAlerts);
    if (event.resolved) this.active.delete(event.key);
    else this.active.set(event.key, event);
  }

  /** Changes and refusals, oldest first. */
  recentDecisions(limit = this.maxDecisions): ScalingDecision[] {
    return this.decisions.slice(-limit);
  }

  /** The latest decision per worker type, holds included: why a type is at its count right now. */
  latestDecisions(): ScalingDecision[] {
    return [...this.latestByType.values()];
  }

  /** Alert events, raised and resolved, oldest first. */
  recentAlerts(limit = this.maxAlerts): AlertEvent[] {
    return this.alerts.slice(-limit);
  }

  /** Alerts raised and not resolved since. */
  activeAlerts(): AlertEvent[] {
    return [...this.active.values()];
  }
}

function push<T>(list: T[], item: T, max: number): void {
  list.push(item);
  if (list.length > max) list.splice(0, list.length - max);
}
