/**
 * Downloads on real Chromium against the fixture server: refused unless the task asks, returned intact when it
 * does, cancelled and typed over the cap, refused from a host the policy blocks, and never left on disk.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserKind } from '../../../../src/workers/browser/index.js';
import { runTask, startKind } from '../../../fixtures/browser/kind.js';
import { downloadBytes, startTestServer, type TestServer } from '../../../fixtures/browser/test-server.js';
import { failure } from '../../../helpers/failure.js';

const CONFIG_CAP = 300 * 1024;

let server: TestServer;
let other: TestServer;
let kind: BrowserKind;

beforeAll(async () => {
  server = await startTestServer();
  other = await startTestServer();
  // Only `server` is allowed: `other` is a loopback port the policy blocks.
  kind = await startKind([server.port], { limits: { max_download_bytes: CONFIG_CAP } });
});

afterAll(async () => {
  await kind?.stop?.();
  await server?.close();
  await other?.close();
});

/** Every file in the instances' download dirs (there must be none once a task is over). */
async function leftovers(): Promise<string[]> {
  const root = kind.options.temp_dir!;
  const out: string[] = [];
  for (const dir of await readdir(root)) {
    const downloads = join(root, dir, 'downloads');
    if (existsSync(downloads)) out.push(...(await readdir(downloads)).map((f) => join(downloads, f)));
  }
  return out;
}

function clickDownload(href: string, downloads?: unknown) {
  return runTask(kind, 'web-automation', {
    url: `${server.origin}/download-link?href=${encodeURIComponent(href)}`,
    steps: [{ action: 'click', selector: '#dl' }],
    ...(downloads !== undefined ? { options: { downloads } } : {}),
  });
}

interface Report {
  downloads: Array<Record<string, unknown>>;
  blocked: Array<{ url: string; reason: string; message: string }>;
}

describe('downloads', () => {
  it('refuses a download when the task did not ask for downloads, and writes nothing', async () => {
    const r = await clickDownload('/download/data.bin?bytes=5000');
    const out = r.output as Report;
    expect(r.artifacts ?? []).toHaveLength(0);
    expect(out.downloads).toEqual([
      {
        url: `${server.origin}/download/data.bin?bytes=5000`,
        suggestedFilename: 'data.bin',
        refused: 'downloads are off',
      },
    ]);
    expect(out.blocked).toContainEqual(
      expect.objectContaining({ reason: 'download', message: 'downloads are off' }),
    );
    expect(await leftovers()).toEqual([]);
  });

  it('refuses it with accept: false too', async () => {
    const r = await clickDownload('/download/data.bin?bytes=100', { accept: false });
    expect((r.output as Report).downloads[0]).toMatchObject({ refused: 'downloads are off' });
    expect(r.artifacts ?? []).toHaveLength(0);
  });

  it('returns the file intact as an artifact with its name, size and sha256 when asked', async () => {
    const size = 200 * 1024 + 17;
    const r = await clickDownload('/download/report%20v2.csv?bytes=' + size + '&type=text/csv', {
      accept: true,
    });
    const out = r.output as Report & { steps: Array<{ ok: boolean }> };
    const expected = downloadBytes(size);
    expect(out.steps[0]!.ok).toBe(true);
    expect(r.artifacts).toHaveLength(1);
    const file = r.artifacts![0]!;
    expect(file.name).toBe('report_v2.csv');
    expect(file.contentType).toBe('text/csv');
    expect(file.data.equals(expected)).toBe(true);
    expect(out.downloads).toEqual([
      {
        url: `${server.origin}/download/report%20v2.csv?bytes=${size}&type=text/csv`,
        suggestedFilename: 'report v2.csv',
        artifact: 'report_v2.csv',
        contentType: 'text/csv',
        bytes: size,
        sha256: createHash('sha256').update(expected).digest('hex'),
      },
    ]);
    expect(await leftovers()).toEqual([]);
  });

  it('downloads from a goto step and from a form submit', async () => {
    const viaGoto = await runTask(kind, 'web-automation', {
      steps: [{ action: 'goto', url: `${server.origin}/download/direct.bin?bytes=3000` }],
      options: { downloads: { accept: true } },
    });
    expect(viaGoto.artifacts![0]!.data.equals(downloadBytes(3000))).toBe(true);

    const viaForm = await runTask(kind, 'form-filling', {
      url: `${server.origin}/download-form?action=${encodeURIComponent('/download/export.csv?bytes=4096')}`,
      fields: [{ label: 'Name', value: 'Ada' }],
      options: { downloads: { accept: true } },
    });
    const out = viaForm.output as Report;
    expect(out.downloads).toHaveLength(1);
    expect(out.downloads[0]).toMatchObject({ suggestedFilename: 'export.csv', bytes: 4096 });
    expect(viaForm.artifacts![0]!.data.equals(downloadBytes(4096))).toBe(true);
    expect(await leftovers()).toEqual([]);
  });

  it('refuses a form submit that answers with a file when downloads are off', async () => {
    const r = await runTask(kind, 'form-filling', {
      url: `${server.origin}/download-form?action=${encodeURIComponent('/download/export.csv?bytes=4096')}`,
      fields: [{ label: 'Name', value: 'Ada' }],
    });
    expect((r.output as Report).downloads).toEqual([
      expect.objectContaining({ suggestedFilename: 'export.csv', refused: 'downloads are off' }),
    ]);
    expect(r.artifacts ?? []).toHaveLength(0);
  });

  it('fails with payload_too_large over the worker cap (declared length), leaving no file', async () => {
    const err = await failure(clickDownload(`/download/big.bin?bytes=${2 * 1024 * 1024}`, { accept: true }));
    expect(err.code).toBe('payload_too_large');
    expect(err.details).toMatchObject({ limit: CONFIG_CAP });
    expect(await leftovers()).toEqual([]);
  });

  it('fails with payload_too_large over the task cap while streaming (no length), leaving no file', async () => {
    const err = await failure(
      clickDownload(`/download/stream.bin?bytes=${250 * 1024}&chunked=1`, {
        accept: true,
        maxBytes: 100_000,
      }),
    );
    expect(err.code).toBe('payload_too_large');
    expect(err.details).toMatchObject({ limit: 100_000, suggestedFilename: 'stream.bin' });
    // Cut by the proxy while streaming, not found on a finished file.
    expect(err.details).not.toHaveProperty('bytes');
    expect(await leftovers()).toEqual([]);
  });

  it('caps a download that is one only because the link says `download` (no attachment header)', async () => {
    const href = `/download/plain.bin?bytes=${200 * 1024}&inline=1`;
    const url = `${server.origin}/download-link?href=${encodeURIComponent(href)}&attr=plain.bin`;
    const run = (downloads: unknown) =>
      runTask(kind, 'web-automation', {
        url,
        steps: [
          { action: 'click', selector: '#dl' },
          { action: 'waitForDownload', timeoutMs: 5000 },
        ],
        options: { downloads },
      });
    const ok = await run({ accept: true });
    expect(ok.artifacts![0]!.data.equals(downloadBytes(200 * 1024))).toBe(true);
    const err = await failure(run({ accept: true, maxBytes: 50_000 }));
    expect(err.code).toBe('payload_too_large');
    expect(err.details).toMatchObject({ limit: 50_000, suggestedFilename: 'plain.bin' });
    expect(await leftovers()).toEqual([]);
  });

  it('waitForDownload fails the step when no download starts', async () => {
    const err = await failure(
      runTask(kind, 'web-automation', {
        url: `${server.origin}/download-link`,
        steps: [{ action: 'waitForDownload', timeoutMs: 300 }],
        options: { downloads: { accept: true } },
      }),
    );
    expect(err.code).toBe('step_failed');
    expect(err.message).toMatch(/no download started/);
  });

  it('a file exactly at the task cap is returned', async () => {
    const r = await clickDownload(`/download/exact.bin?bytes=100000&chunked=1`, {
      accept: true,
      maxBytes: 100_000,
    });
    expect(r.artifacts![0]!.data.length).toBe(100_000);
  });

  it('refuses a download from a loopback port the policy blocks; the server is never reached', async () => {
    const before = other.hits.length;
    const r = await clickDownload(`${other.origin}/download/secret.bin?bytes=1000`, { accept: true });
    const out = r.output as Report;
    expect(r.artifacts ?? []).toHaveLength(0);
    expect(out.downloads).toEqual([]);
    expect(out.blocked).toContainEqual(
      expect.objectContaining({ url: `${other.origin}/download/secret.bin?bytes=1000` }),
    );
    expect(other.hits.slice(before)).toEqual([]);
  });

  it('rejects a malformed downloads option with a clear schema error', () => {
    const h = kind.handlers.find((x) => x.capability === 'web-automation')!;
    const bad = h.payloadSchema.safeParse({
      url: server.origin,
      steps: [{ action: 'wait', ms: 1 }],
      options: { downloads: { accept: 'yes', maxBytes: -1 } },
    });
    expect(bad.success).toBe(false);
  });
});
