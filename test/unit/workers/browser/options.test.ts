import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../../src/config/load.js';
import { applyEnv } from '../../../../src/config/load.js';
import { createBrowserKind } from '../../../../src/workers/browser/index.js';
import {
  CPU_OPTIMIZED_FLAGS,
  GPU_FLAGS,
  parseBrowserOptions,
  SOFTWARE_RENDERING_FLAGS,
  TRANSPORT_GUARD_FLAGS,
} from '../../../../src/workers/browser/options.js';
import { imageSize, pdfPageCount } from '../../../../src/workers/browser/image-info.js';

describe('browser_config', () => {
  it("defaults to the spec's values and the headless-shell binary", () => {
    const o = parseBrowserOptions(undefined);
    expect(o).toMatchObject({
      pool_size: 3,
      auto_restart: true,
      memory_limit_mb: 512,
      max_tasks_per_instance: 100,
      executable_path: '/usr/lib/chromium/chromium-headless-shell',
      launch_timeout: 30_000,
    });
    expect(o.flags).toEqual(
      expect.arrayContaining([
        ...SOFTWARE_RENDERING_FLAGS,
        ...CPU_OPTIMIZED_FLAGS,
        '--disable-quic',
        '--no-sandbox',
      ]),
    );
  });

  it('closes the transports around the proxy and refuses flags that would reopen them', () => {
    const o = parseBrowserOptions({ chrome_flags: ['--disable-gpu'] });
    expect(o.flags).toEqual(expect.arrayContaining([...TRANSPORT_GUARD_FLAGS]));
    for (const bad of [
      '--force-webrtc-ip-handling-policy=default',
      '--webrtc-ip-handling-policy=default',
      '--enable-quic',
      '--origin-to-force-quic-on=example.com:443',
      '--proxy-pac-url=http://x/',
      '--host-resolver-rules=MAP * 127.0.0.1',
      '--host-rules=MAP * 127.0.0.1',
    ]) {
      expect(() => parseBrowserOptions({ extra_flags: [bad] }), bad).toThrow(/managed by the worker/);
    }
  });

  it('sizes the screenshot pixel cap to the memory limit unless set', () => {
    expect(parseBrowserOptions({}).limits.max_screenshot_pixels).toBe((512 * 1024 * 1024) / 64);
    expect(parseBrowserOptions({ memory_limit_mb: 1024 }).limits.max_screenshot_pixels).toBe(
      (1024 * 1024 * 1024) / 64,
    );
    expect(
      parseBrowserOptions({ limits: { max_screenshot_pixels: 1000 } }).limits.max_screenshot_pixels,
    ).toBe(1000);
    expect(parseBrowserOptions({}).unresponsive_timeout).toBe(10_000);
    expect(parseBrowserOptions({}).memory_cgroup).toBe(true);
  });

  it('reads the environment variables the loader maps', () => {
    const raw = applyEnv(
      {},
      {
        BROWSER_POOL_SIZE: '2',
        BROWSER_MEMORY_LIMIT: '256',
        BROWSER_AUTO_RESTART: 'false',
        BROWSER_SOFTWARE_RENDERING: 'false',
        BROWSER_CPU_OPTIMIZED: 'false',
        BROWSER_EXECUTABLE_PATH: '/usr/lib/chromium/chromium',
      },
    );
    const o = parseBrowserOptions(
      (parseConfig(raw).browser_worker as Record<string, unknown>).browser_config,
    );
    expect(o).toMatchObject({
      pool_size: 2,
      memory_limit_mb: 256,
      auto_restart: false,
      executable_path: '/usr/lib/chromium/chromium',
      performance_mode: 'balanced',
    });
    expect(o.flags).not.toContain('--disable-software-rasterizer');
  });

  it("accepts the spec's memory_limit spelling and the GPU variant", () => {
    expect(parseBrowserOptions({ memory_limit: '1GB' }).memory_limit_mb).toBe(1024);
    const gpu = parseBrowserOptions({ performance_mode: 'gpu' });
    expect(gpu.flags).toEqual(expect.arrayContaining([...GPU_FLAGS]));
    expect(gpu.flags).not.toContain('--disable-gpu');
  });

  it('names the field in config_invalid errors', () => {
    expect(() => parseBrowserOptions({ pool_size: 0 })).toThrow(/browser_config\.pool_size/);
    expect(() => parseBrowserOptions({ memory_limit: 'lots' })).toThrow(/browser_config\.memory_limit/);
    expect(() => parseBrowserOptions({ colour: 'red' })).toThrow(/unknown field\(s\) colour/);
    expect(() => parseBrowserOptions({ url_policy: { allowed_addresses: ['nope'] } })).toThrow(
      /allowed_addresses/,
    );
    expect(() => parseBrowserOptions({ extra_flags: ['--proxy-server=x'] })).toThrow(/managed by the worker/);
    expect(() => parseBrowserOptions({ extra_flags: ['--user-data-dir=/tmp/x'] })).toThrow(
      /config_invalid|managed/,
    );
  });

  it('builds a kind with one handler per capability, and refuses unknown capabilities', () => {
    const section = parseConfig({}).browser_worker;
    const kind = createBrowserKind(section);
    expect(kind.type).toBe('browser-worker');
    expect(kind.handlers.map((h) => h.capability).sort()).toEqual([
      'form-filling',
      'pdf-generation',
      'scraping',
      'screenshot',
      'testing',
      'web-automation',
    ]);
    expect(kind.ready!()).toBe(false);
    expect(() =>
      createBrowserKind(
        parseConfig({ browser_worker: { capabilities: ['screenshot', 'teleport'] } }).browser_worker,
      ),
    ).toThrow(/teleport/);
  });

  it('validates payloads per handler', () => {
    const kind = createBrowserKind(parseConfig({}).browser_worker);
    const shot = kind.handlers.find((h) => h.capability === 'screenshot')!;
    expect(shot.payloadSchema.safeParse({ url: 'http://x/' }).success).toBe(true);
    expect(shot.payloadSchema.safeParse({}).success).toBe(false);
    expect(shot.payloadSchema.safeParse({ url: 'http://x/', html: '<p>' }).success).toBe(false);
    expect(shot.payloadSchema.safeParse({ url: 'http://x/', taskType: 'scraping' }).success).toBe(false);
    const auto = kind.handlers.find((h) => h.capability === 'web-automation')!;
    expect(auto.payloadSchema.safeParse({ steps: [{ action: 'teleport' }] }).success).toBe(false);
    expect(
      auto.payloadSchema.safeParse({ taskType: 'automation', steps: [{ action: 'click', selector: '#a' }] })
        .success,
    ).toBe(true);
  });
});

describe('image and PDF facts', () => {
  it('reads PNG and JPEG sizes and counts PDF pages', () => {
    const png = Buffer.from(
      'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=',
      'base64',
    );
    expect(imageSize(png)).toEqual({ width: 1, height: 1 });
    const jpeg = Buffer.from([
      0xff, 0xd8, 0xff, 0xe0, 0, 4, 0, 0, 0xff, 0xc0, 0, 11, 8, 0, 20, 0, 30, 3, 0, 0, 0, 0,
    ]);
    expect(imageSize(jpeg)).toEqual({ width: 30, height: 20 });
    expect(pdfPageCount(Buffer.from('%PDF-1.4 << /Type /Pages /Kids [] /Count 3 >> << /Type /Page >>'))).toBe(
      3,
    );
  });
});
