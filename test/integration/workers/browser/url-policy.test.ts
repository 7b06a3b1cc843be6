/**
 * The URL policy against real Chromium: every request the page makes goes through the task's proxy. The
 * "blocked host" is a second loopback server on a port that is not on the allow list; it must see no traffic.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failure } from '../../../helpers/failure.js';
import { FleetError } from '../../../../src/protocol/errors.js';
import type { BrowserKind } from '../../../../src/workers/browser/index.js';
import { runTask, startKind } from '../../../fixtures/browser/kind.js';
import { startTestServer, type TestServer } from '../../../fixtures/browser/test-server.js';

let allowed: TestServer;
let blocked: TestServer;
let kind: BrowserKind;
const hostname = readFileSync('/etc/hostname', 'utf8').trim();

beforeAll(async () => {
  allowed = await startTestServer();
  blocked = await startTestServer();
  kind = await startKind([allowed.port], { pool_size: 1 });
});

afterAll(async () => {
  await kind?.stop?.();
  await allowed?.close();
  await blocked?.close();
});

describe('URL policy', () => {
  it('refuses a redirect hop to a blocked host, which never sees the request', async () => {
    const err = await failure(
      runTask(kind, 'scraping', {
        url: `${allowed.origin}/redirect?to=${encodeURIComponent(`${blocked.origin}/table.html`)}`,
      }),
    );
    expect(err.code).toBe('url_blocked');
    expect(blocked.hits).toEqual([]);
  });

  it('refuses an <img>, a WebSocket and a redirected subresource to a blocked host; the page itself loads', async () => {
    const r = await runTask(kind, 'scraping', {
      url: `${allowed.origin}/reach?other=${encodeURIComponent(blocked.origin)}`,
      options: {
        waitForFunction:
          "document.getElementById('ws').textContent !== 'pending' && document.getElementById('img-state').textContent !== 'pending'",
      },
    });
    const out = r.output as { text: string; blocked: Array<{ url: string; reason: string }> };
    expect(out.text).toContain('reach');
    expect(out.text).not.toContain('hello from the test server');
    expect(out.blocked.map((b) => b.reason)).toContain('address');
    expect(out.blocked.some((b) => b.url.includes(`${blocked.port}/pixel.png`))).toBe(true);
    expect(
      out.blocked.some((b) => b.url.includes(`127.0.0.1:${blocked.port}`) && !b.url.includes('pixel')),
    ).toBe(true);

    const r2 = await runTask(kind, 'scraping', {
      url: `${allowed.origin}/redirect-img?other=${encodeURIComponent(blocked.origin)}`,
      options: { waitForNetworkIdle: true },
    });
    expect((r2.output as { blocked: unknown[] }).blocked.length).toBeGreaterThan(0);
    expect(blocked.hits).toEqual([]);
    expect(blocked.wsConnections).toBe(0);
  });

  it('refuses file:, data:, chrome: and view-source: navigations before they reach the browser', async () => {
    for (const url of [
      'file:///etc/hostname',
      'data:text/html,<h1>x</h1>',
      'chrome://version',
      'view-source:http://127.0.0.1/',
      'javascript:alert(1)',
    ]) {
      const err = await failure(runTask(kind, 'screenshot', { url }));
      expect(err.code, url).toBe('url_blocked');
    }
    const step = await failure(
      runTask(kind, 'web-automation', {
        url: `${allowed.origin}/table.html`,
        steps: [{ action: 'goto', url: 'file:///etc/hostname' }],
      }),
    );
    expect(step.code).toBe('url_blocked');
  });

  it('refuses loopback addresses not on the allow list, and credentials in URLs', async () => {
    expect(
      (await failure(runTask(kind, 'scraping', { url: `http://127.0.0.2:${allowed.port}/table.html` }))).code,
    ).toBe('url_blocked');
    expect(
      (await failure(runTask(kind, 'scraping', { url: `http://localhost:${blocked.port}/` }))).code,
    ).toBe('url_blocked');
    expect(
      (await failure(runTask(kind, 'scraping', { url: `http://user:pw@127.0.0.1:${allowed.port}/` }))).code,
    ).toBe('url_blocked');
    expect(blocked.hits).toEqual([]);
  });

  it('keeps file: out of an iframe and out of a script-driven navigation', async () => {
    const frame = await runTask(kind, 'scraping', {
      url: `${allowed.origin}/iframe-file`,
      options: { delayMs: 300 },
    });
    const out = frame.output as { blocked: Array<{ url: string; reason: string }>; html?: string };
    expect(out.blocked.some((b) => b.url.startsWith('file:') && b.reason === 'scheme')).toBe(true);
    const inFrame = await runTask(kind, 'web-automation', {
      url: `${allowed.origin}/iframe-file`,
      steps: [
        {
          action: 'evaluate',
          script:
            '() => { try { return document.getElementById("f").contentDocument?.body?.innerText ?? null } catch (e) { return "denied" } }',
        },
      ],
    });
    const steps = (inFrame.output as { steps: Array<{ result?: unknown }> }).steps;
    expect(JSON.stringify(steps[0]!.result ?? null)).not.toContain(hostname);

    const nav = await runTask(kind, 'scraping', {
      url: `${allowed.origin}/nav-file`,
      options: { delayMs: 500 },
    }).then(
      (r) => r.output as { finalUrl: string; text: string },
      (err: FleetError) => err,
    );
    if (nav instanceof FleetError) expect(nav.code).toBe('url_blocked');
    else {
      expect(nav.finalUrl.startsWith('http://')).toBe(true);
      expect(nav.text).not.toContain(hostname);
    }
  });

  it('serves raw HTML from an http origin where file: subresources are refused too', async () => {
    const r = await runTask(kind, 'scraping', {
      html: `<h1>inline</h1><img src="file:///etc/hostname"><img src="${blocked.origin}/pixel.png">`,
      options: { waitForNetworkIdle: true },
    });
    const out = r.output as { finalUrl: string; blocked: Array<{ url: string }> };
    expect(out.finalUrl).toBe('http://fleet-content.invalid/');
    expect(out.blocked.some((b) => b.url.includes(String(blocked.port)))).toBe(true);
    expect(blocked.hits).toEqual([]);
  });

  it('blocks service workers and leaves no cookie for the next task', async () => {
    const first = await runTask(kind, 'web-automation', {
      url: `${allowed.origin}/table.html`,
      steps: [
        {
          action: 'evaluate',
          script:
            '() => { document.cookie = "k=v; max-age=3600"; localStorage.setItem("x", "1"); return [document.cookie, "serviceWorker" in navigator ? typeof navigator.serviceWorker.register : "none"] }',
        },
      ],
    });
    expect((first.output as { steps: Array<{ result: unknown }> }).steps[0]!.result).toEqual([
      'k=v',
      expect.any(String),
    ]);
    const second = await runTask(kind, 'web-automation', {
      url: `${allowed.origin}/table.html`,
      steps: [{ action: 'evaluate', script: '() => [document.cookie, localStorage.getItem("x")]' }],
    });
    expect((second.output as { steps: Array<{ result: unknown }> }).steps[0]!.result).toEqual(['', null]);
  });
});
