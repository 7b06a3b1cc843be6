/**
 * The behavioural contract of the WorkerDirectory seam (DESIGN §2, §7), run unchanged against every store:
 * `describeWorkerDirectoryContract('memory', async () => ({ directory, elapse }))`.
 *
 * `elapse(ms)` lets time pass for expiry checks: a fake clock for the memory store, a real (short) sleep
 * for Redis, whose expiry is the server's. TTLs here are a few hundred ms, never production intervals.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { WorkerDirectory, WorkerRecord } from '../../src/manager/registry/worker-directory.js';

export interface WorkerDirectoryFixture {
  directory: WorkerDirectory;
  /** Lets `ms` pass for TTLs. */
  elapse: (ms: number) => Promise<void>;
}

export type WorkerDirectoryFactory = () => Promise<WorkerDirectoryFixture>;

const TTL = 200;

export function describeWorkerDirectoryContract(
  name: string,
  factory: WorkerDirectoryFactory,
  teardown?: (directory: WorkerDirectory) => Promise<void>,
): void {
  describe(`WorkerDirectory contract: ${name}`, () => {
    const open: WorkerDirectory[] = [];
    const make = async (): Promise<WorkerDirectoryFixture> => {
      const fixture = await factory();
      open.push(fixture.directory);
      return fixture;
    };
    const uid = (label: string): string => `${label}-${randomUUID().slice(0, 8)}`;
    const endpoint = (): string =>
      `ws://127.0.0.1:${1024 + Math.floor(Math.random() * 60000)}/ws?${uid('e')}`;
    const record = (over: Partial<WorkerRecord> = {}): WorkerRecord => ({
      workerId: uid('worker'),
      workerType: 'echo',
      endpoint: endpoint(),
      port: 3010,
      status: 'online',
      capabilities: ['echo', 'sleep'],
      currentLoad: 0.25,
      inFlight: 2,
      maxConcurrency: 8,
      lastHeartbeat: 1_700_000_000_000,
      ownerId: 'm1',
      ...over,
    });

    afterEach(async () => {
      for (const directory of open.splice(0)) {
        await directory.close();
        if (teardown) await teardown(directory);
      }
    });

    describe('endpoints', () => {
      it('remembers endpoints idempotently and forgets them', async () => {
        const { directory } = await make();
        const a = endpoint();
        const b = endpoint();
        await directory.addEndpoint(a, { workerType: 'echo', source: 'config' });
        await directory.addEndpoint(a, { source: 'announce' });
        await directory.addEndpoint(b);
        expect((await directory.endpoints()).sort()).toEqual([a, b].sort());
        await directory.removeEndpoint(a);
        expect(await directory.endpoints()).toEqual([b]);
        await directory.removeEndpoint(a);
        expect(await directory.endpoints()).toEqual([b]);
      });

      it('drops the lease of a removed endpoint', async () => {
        const { directory } = await make();
        const a = endpoint();
        await directory.addEndpoint(a);
        expect(await directory.acquire(a, 'm1', 10_000)).toBe(true);
        await directory.removeEndpoint(a);
        expect(await directory.ownerOf(a)).toBeUndefined();
      });
    });

    describe('ownership leases', () => {
      it('gives a free endpoint to the first manager only', async () => {
        const { directory } = await make();
        const a = endpoint();
        expect(await directory.ownerOf(a)).toBeUndefined();
        expect(await directory.acquire(a, 'm1', 10_000)).toBe(true);
        expect(await directory.acquire(a, 'm2', 10_000)).toBe(false);
        expect(await directory.acquire(a, 'm1', 10_000)).toBe(true);
        expect(await directory.ownerOf(a)).toBe('m1');
      });

      it('lets one of many concurrent managers win', async () => {
        const { directory } = await make();
        const a = endpoint();
        const wins = await Promise.all(
          Array.from({ length: 10 }, (_, i) => directory.acquire(a, `m${i}`, 10_000)),
        );
        expect(wins.filter(Boolean)).toHaveLength(1);
        expect(await directory.ownerOf(a)).toBe(`m${wins.indexOf(true)}`);
      });

      it('renews only for the holder; another manager takes over an expired lease', async () => {
        const { directory, elapse } = await make();
        const a = endpoint();
        expect(await directory.acquire(a, 'm1', TTL)).toBe(true);
        expect(await directory.renew(a, 'm1', TTL)).toBe(true);
        expect(await directory.renew(a, 'm2', TTL)).toBe(false);
        await elapse(TTL + 150);
        expect(await directory.ownerOf(a)).toBeUndefined();
        expect(await directory.acquire(a, 'm2', 10_000)).toBe(true);
        expect(await directory.renew(a, 'm1', TTL)).toBe(false);
        expect(await directory.ownerOf(a)).toBe('m2');
      });

      it('keeps a renewed lease past its first ttl', async () => {
        const { directory, elapse } = await make();
        const a = endpoint();
        await directory.acquire(a, 'm1', TTL * 2);
        await elapse(TTL);
        expect(await directory.renew(a, 'm1', TTL * 2)).toBe(true);
        await elapse(TTL + 100);
        expect(await directory.ownerOf(a)).toBe('m1');
        expect(await directory.acquire(a, 'm2', TTL)).toBe(false);
      });

      it('releases only for the holder', async () => {
        const { directory } = await make();
        const a = endpoint();
        await directory.acquire(a, 'm1', 10_000);
        await directory.release(a, 'm2');
        expect(await directory.ownerOf(a)).toBe('m1');
        await directory.release(a, 'm1');
        expect(await directory.ownerOf(a)).toBeUndefined();
        expect(await directory.acquire(a, 'm2', 10_000)).toBe(true);
      });
    });

    describe('worker records', () => {
      it('publishes, lists, replaces and removes records', async () => {
        const { directory } = await make();
        const r1 = record();
        const r2 = record({ workerType: 'python-sandbox', capabilities: ['python-execution'] });
        await directory.publish(r1, 10_000);
        await directory.publish(r2, 10_000);
        const listed = await directory.list();
        expect(listed.find((r) => r.workerId === r1.workerId)).toEqual(r1);
        expect(listed.find((r) => r.workerId === r2.workerId)).toEqual(r2);
        await directory.publish({ ...r1, status: 'busy', inFlight: 8, currentLoad: 1 }, 10_000);
        const again = await directory.list();
        expect(again).toHaveLength(2);
        expect(again.find((r) => r.workerId === r1.workerId)).toMatchObject({ status: 'busy', inFlight: 8 });
        await directory.remove(r1.workerId);
        expect((await directory.list()).map((r) => r.workerId)).toEqual([r2.workerId]);
      });

      it('lets a record expire unless published again', async () => {
        const { directory, elapse } = await make();
        const stale = record();
        const fresh = record();
        await directory.publish(stale, TTL);
        await directory.publish(fresh, TTL);
        await elapse(TTL / 2);
        await directory.publish(fresh, TTL * 3);
        await elapse(TTL / 2 + 150);
        expect((await directory.list()).map((r) => r.workerId)).toEqual([fresh.workerId]);
      });

      it('returns copies: changing a listed record changes nothing stored', async () => {
        const { directory } = await make();
        const r = record();
        await directory.publish(r, 10_000);
        const [listed] = await directory.list();
        if (listed) listed.status = 'offline';
        r.status = 'error';
        expect((await directory.list())[0]?.status).toBe('online');
      });
    });
  });
}
