/** The download pieces that need no browser: the option, names, the cap, and the proxy's cut of a response. */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DownloadsOptionSchema,
  artifactNameOf,
  downloadLimit,
} from '../../../../src/workers/browser/downloads.js';
import { UrlPolicySchema } from '../../../../src/workers/browser/options.js';
import { PolicyProxy, isAttachment } from '../../../../src/workers/browser/policy-proxy.js';
import { UrlPolicy } from '../../../../src/workers/browser/url-policy.js';

describe('download option and names', () => {
  it('accepts { accept, maxBytes? } and nothing else', () => {
    expect(DownloadsOptionSchema.parse({ accept: true, maxBytes: 10 })).toEqual({
      accept: true,
      maxBytes: 10,
    });
    expect(DownloadsOptionSchema.safeParse({ accept: true, maxBytes: 0 }).success).toBe(false);
    expect(DownloadsOptionSchema.safeParse({ accept: true, path: '/tmp' }).success).toBe(false);
    expect(DownloadsOptionSchema.safeParse({}).success).toBe(false);
  });

  it('takes the smaller of the worker cap and the task cap', () => {
    expect(downloadLimit(1000, undefined)).toBe(1000);
    expect(downloadLimit(1000, { accept: true, maxBytes: 10 })).toBe(10);
    expect(downloadLimit(1000, { accept: true, maxBytes: 5000 })).toBe(1000);
  });

  it('makes suggested filenames safe artifact names', () => {
    expect(artifactNameOf('report v2.csv')).toBe('report_v2.csv');
    expect(artifactNameOf('../../etc/passwd')).toBe('passwd');
    expect(artifactNameOf('..\\..\\boot.ini')).toBe('boot.ini');
    expect(artifactNameOf('.hidden')).toBe('hidden');
    expect(artifactNameOf('')).toBe('download');
    expect(artifactNameOf('x'.repeat(500) + '.bin').length).toBe(120);
  });

  it('recognises attachment dispositions', () => {
    expect(isAttachment('attachment; filename="a.bin"')).toBe(true);
    expect(isAttachment('Attachment')).toBe(true);
    expect(isAttachment('inline; filename="a.bin"')).toBe(false);
    expect(isAttachment(undefined)).toBe(false);
  });
});

describe('the policy proxy and downloads', () => {
  let upstream: Server;
  let port: number;
  let proxy: PolicyProxy;
  const body = Buffer.alloc(300_000, 7);

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
      if (req.url?.includes('attach')) headers['content-disposition'] = 'attachment; filename="f.bin"';
      res.writeHead(200, headers);
      res.end(body);
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
    port = (upstream.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await proxy?.close();
    await new Promise<void>((r) => upstream.close(() => r()));
  });

  async function fetchThrough(p: PolicyProxy, path: string): Promise<{ bytes: number; complete: boolean }> {
    return new Promise((resolve) => {
      const req = request({ host: '127.0.0.1', port: p.port, path: `http://127.0.0.1:${port}${path}` });
      req.on('response', (res) => {
        let bytes = 0;
        res.on('data', (c: Buffer) => (bytes += c.length));
        res.on('end', () => resolve({ bytes, complete: true }));
        res.on('error', () => resolve({ bytes, complete: false }));
        res.on('aborted', () => resolve({ bytes, complete: false }));
      });
      req.on('error', () => resolve({ bytes: 0, complete: false }));
      req.end();
    });
  }

  it('holds an attachment to the task cap, reports the cut, and leaves other responses alone', async () => {
    const policy = new UrlPolicy(UrlPolicySchema.parse({ allowed_addresses: [`127.0.0.1:${port}`] }));
    proxy = new PolicyProxy(policy, 10_000_000);
    await proxy.listen();
    const cuts: string[] = [];
    proxy.downloadCap = 100_000;
    proxy.onDownloadCut = (url) => cuts.push(url);

    const plain = await fetchThrough(proxy, '/page');
    expect(plain).toEqual({ bytes: body.length, complete: true });
    expect(cuts).toEqual([]);

    const attached = await fetchThrough(proxy, '/attach');
    expect(attached.complete).toBe(false);
    expect(attached.bytes).toBeLessThanOrEqual(100_000);
    expect(cuts).toEqual([`http://127.0.0.1:${port}/attach`]);
    expect(proxy.cutDownloads.has(`http://127.0.0.1:${port}/attach`)).toBe(true);
    expect(proxy.blocked).toContainEqual(expect.objectContaining({ reason: 'size' }));
    expect(proxy.contentTypeOf(`http://127.0.0.1:${port}/page`)).toBe('application/octet-stream');
  });
});
