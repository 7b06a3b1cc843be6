/**
 * A task as it runs, on stderr (stdout stays the result's): on a terminal a progress bar redrawn in place,
 * with the task's own stdout/stderr written above it as it comes, like `docker run`; elsewhere (a pipe, a
 * log file) one line per progress report and the output as is. `--quiet` shows nothing.
 */
import type { FleetClient } from '../client/fleet-client.js';

export type ProgressMode = 'bar' | 'lines' | 'quiet';

export interface ProgressReport {
  percent?: number;
  message?: string;
  log?: { stream: string; data: string };
  attempt?: number;
}

export interface Writable {
  write(text: string): unknown;
}

const BAR_WIDTH = 28;

export function progressBar(
  percent: number | undefined,
  message: string | undefined,
  width = BAR_WIDTH,
): string {
  const p = percent === undefined ? undefined : Math.max(0, Math.min(100, percent));
  const filled = p === undefined ? 0 : Math.round((p / 100) * width);
  const bar = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]`;
  const pct = p === undefined ? ' ...' : `${String(Math.floor(p)).padStart(3)}%`;
  return `${bar} ${pct}${message ? ` ${message}` : ''}`;
}

export class ProgressView {
  private barShown = false;
  private last: ProgressReport = {};
  private midLine = false;

  constructor(
    private readonly out: Writable,
    private readonly mode: ProgressMode,
    /** Terminal width, so the bar's line never wraps (a wrapped line cannot be redrawn in place). */
    private readonly columns = 100,
  ) {}

  report(r: ProgressReport): void {
    if (this.mode === 'quiet') return;
    if (r.log) this.output(r.log.data);
    if (r.percent === undefined && r.message === undefined) return;
    this.last = { ...this.last, ...r };
    if (this.mode === 'lines') {
      const pct = r.percent !== undefined ? `${Math.floor(r.percent)}%` : '';
      this.out.write(`progress ${[pct, r.message ?? ''].filter(Boolean).join(' ')}\n`);
    } else this.drawBar();
  }

  /** Removes the bar (the result or the error line follows). */
  finish(): void {
    if (this.mode === 'bar' && this.barShown) this.out.write('\r\x1b[2K');
    else if (this.midLine) this.out.write('\n');
    this.barShown = false;
    this.midLine = false;
  }

  private output(data: string): void {
    if (this.mode === 'bar' && this.barShown) this.out.write('\r\x1b[2K');
    this.out.write(data);
    this.midLine = !data.endsWith('\n');
    if (this.mode === 'bar') {
      // The bar goes back on a line of its own below the output.
      if (this.midLine) {
        this.out.write('\n');
        this.midLine = false;
      }
      if (this.barShown) this.drawBar();
    }
  }

  private drawBar(): void {
    const line = progressBar(this.last.percent, this.last.message);
    this.out.write(`\r\x1b[2K${line.slice(0, Math.max(10, this.columns - 1))}`);
    this.barShown = true;
  }
}

/** Feeds a task's progress events to `view` until the returned function is called. */
export async function followProgress(
  client: FleetClient,
  taskId: string,
  view: ProgressView,
): Promise<() => void> {
  return client.events(
    (e) => {
      if (e.type !== 'progress') return;
      const p = e.progress as ProgressReport & { taskId: string };
      if (p.taskId === taskId) view.report(p);
    },
    { taskId, types: ['progress'] },
  );
}

export function progressMode(opts: { quiet?: boolean }, stream: { isTTY?: boolean }): ProgressMode {
  if (opts.quiet) return 'quiet';
  return stream.isTTY ? 'bar' : 'lines';
}
