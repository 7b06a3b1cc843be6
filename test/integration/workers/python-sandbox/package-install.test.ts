/**
 * Attack suite: package-install never runs package code with network access. A local sdist whose build
 * connects to a loopback listener of this test is refused (and, when the operator allows sdists, built
 * in the sandbox without network); wheels install from a local directory and from a loopback index.
 * Nothing here leaves the machine: pip only ever sees file paths and 127.0.0.1.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildWheel } from '../../../fixtures/python/build-wheel.js';
import { fail, ok, sid, startPythonWorker, type Harness } from './helpers.js';

let listener: Server;
let port = 0;
let connections = 0;
let index: HttpServer;
let indexUrl = '';
let wheels: string;
let indexFiles: string;

/** An sdist whose setup.py connects to the listener at build time and records what happened. */
function buildEvilSdist(dir: string, name: string, listenerPort: number): string {
  const script = `
import io, sys, tarfile, time
name, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
setup_py = f'''
import socket
from setuptools import setup
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
    result = "connected"
except Exception as e:
    result = "no connection: " + type(e).__name__
with open("{name}.py", "w") as f:
    f.write("RESULT = %r\\\\n" % result)
setup(name="{name}", version="0.1", py_modules=["{name}"])
'''
files = {
    f"{name}-0.1/setup.py": setup_py,
    f"{name}-0.1/{name}.py": "RESULT = 'not built'\\n",
    f"{name}-0.1/PKG-INFO": f"Metadata-Version: 2.1\\nName: {name}\\nVersion: 0.1\\n",
}
with tarfile.open(out, "w:gz") as tar:
    for path, text in files.items():
        data = text.encode()
        info = tarfile.TarInfo(path)
        info.size = len(data)
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))
`;
  const file = join(dir, `${name}-0.1.tar.gz`);
  execFileSync('/usr/bin/python3', ['-I', '-c', script, name, String(listenerPort), file]);
  return file;
}

beforeAll(async () => {
  listener = createServer((s) => {
    connections++;
    s.destroy();
  });
  await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
  port = (listener.address() as { port: number }).port;
  wheels = mkdtempSync(join(tmpdir(), 'fleet-wheels-'));
  chmodSync(wheels, 0o755);
  buildWheel(wheels, 'fleetgood', '1.0.0', 'VALUE = "good wheel"\n');
  buildEvilSdist(wheels, 'fleetevil', port);
  // A PEP 503 simple index on loopback: one wheel and one sdist.
  indexFiles = mkdtempSync(join(tmpdir(), 'fleet-index-'));
  const served = new Map<string, string[]>([
    ['fleetindexed', [buildWheel(indexFiles, 'fleetindexed', '2.0.0', 'VALUE = "from the index"\n')]],
    ['fleetevilidx', [buildEvilSdist(indexFiles, 'fleetevilidx', port)]],
  ]);
  index = createHttpServer((req, res) => {
    const url = req.url ?? '/';
    const project = /^\/simple\/([^/]+)\/?$/.exec(url)?.[1];
    if (project && served.has(project)) {
      const links = (served.get(project) ?? []).map(
        (f) => `<a href="/files/${basename(f)}">${basename(f)}</a>`,
      );
      res
        .writeHead(200, { 'content-type': 'text/html' })
        .end(`<html><body>${links.join('\n')}</body></html>`);
      return;
    }
    const file = /^\/files\/([^/]+)$/.exec(url)?.[1];
    if (file && [...served.values()].flat().some((f) => basename(f) === file)) {
      res.writeHead(200).end(readFileSync(join(indexFiles, file)));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => index.listen(0, '127.0.0.1', r));
  indexUrl = `http://127.0.0.1:${(index.address() as { port: number }).port}/simple/`;
}, 60_000);

afterAll(async () => {
  listener?.close();
  index?.close();
  rmSync(wheels, { recursive: true, force: true });
  rmSync(indexFiles, { recursive: true, force: true });
});

const install = (h: Harness, packages: string[], sessionId: string) =>
  h.fm.assign('package-install', { packages }, { sessionId, timeoutMs: 120_000 });
const run = (h: Harness, code: string, sessionId: string) =>
  h.fm.assign('python-execution', { code }, { sessionId, timeoutMs: 20_000 });

describe('package-install without network for package code', () => {
  test('default: a local sdist is refused (no build, no connection); a local wheel and an indexed wheel install', async () => {
    const h = await startPythonWorker({ pool_size: 1, wheel_dir: wheels, index_url: indexUrl });
    try {
      const s = sid('pkg');
      const err = fail(await install(h, ['fleetevil'], s), 'package_build_refused');
      expect(err.details?.packages).toEqual(['fleetevil']);
      // From the index, wheels only: the sdist is never even downloaded, so never built.
      fail(await install(h, ['fleetevilidx'], s), 'package_install_failed');
      expect(connections).toBe(0);
      expect(ok(await install(h, ['fleetgood'], s)).installed).toContain('fleetgood-1.0.0');
      expect(ok(await install(h, ['fleetindexed==2.0.0'], s)).installed).toContain('fleetindexed-2.0.0');
      expect(
        ok(await run(h, 'import fleetgood, fleetindexed\n(fleetgood.VALUE, fleetindexed.VALUE)', s)).value,
      ).toBe("('good wheel', 'from the index')");
      expect(connections).toBe(0);
    } finally {
      await h.stop();
    }
  }, 240_000);

  test('allow_sdist: the sdist is built inside the sandbox, and its build reaches no network', async () => {
    const h = await startPythonWorker({ pool_size: 1, wheel_dir: wheels, allow_sdist: true });
    try {
      const s = sid('sdist');
      expect(ok(await install(h, ['fleetevil'], s)).installed).toContain('fleetevil-0.1');
      const result = ok(await run(h, 'import fleetevil\nfleetevil.RESULT', s)).value as string;
      expect(result).toMatch(/^'no connection: /);
      expect(connections).toBe(0);
    } finally {
      await h.stop();
    }
  }, 240_000);
});

describe('package-install reports its upstream tries (issue 14 point 5)', () => {
  test("an index that drops every connection: pip's own retries are reported as details.upstreamAttempts, one per real connection", async () => {
    let hits = 0;
    const flaky = createServer((socket) => {
      hits++;
      socket.destroy();
    });
    await new Promise<void>((r) => flaky.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(flaky.address() as { port: number }).port}/simple`;
    const h = await startPythonWorker({ pool_size: 1, index_url: url });
    try {
      const err = fail(await install(h, ['fleetnothere'], sid('flaky')), 'package_install_failed');
      expect(hits).toBeGreaterThan(1);
      expect(err.details?.upstreamAttempts).toBe(hits);
    } finally {
      await h.stop();
      flaky.close();
    }
  }, 120_000);
});
