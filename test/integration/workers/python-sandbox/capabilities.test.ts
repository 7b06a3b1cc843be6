/* eslint-disable @typescript-eslint/no-explicit-any -- task outputs are JSON the tests inspect field by field */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { buildWheel } from '../../../fixtures/python/build-wheel.js';
import { fail, ok, sid, startPythonWorker, type Harness } from './helpers.js';

let h: Harness;
let wheels: string;
beforeAll(async () => {
  wheels = mkdtempSync(join(tmpdir(), 'fleet-wheels-'));
  chmodSync(wheels, 0o755);
  buildWheel(wheels, 'fleetdemo', '1.2.3', 'def greet(who):\n    return f"hello {who} from fleetdemo"\n');
  h = await startPythonWorker({ pool_size: 1, wheel_dir: wheels, max_transfer_mb: 1 });
}, 60_000);
afterAll(async () => {
  await h?.stop();
  rmSync(wheels, { recursive: true, force: true });
});

const files = (payload: Record<string, unknown>, sessionId: string) =>
  h.fm.assign('file-operations', payload, { sessionId, timeoutMs: 15_000 });

describe('file-operations', () => {
  test('write, read, list, stat, move, download, delete; code sees the files', async () => {
    const s = sid('files');
    ok(await files({ op: 'write', path: 'data/in.txt', content: 'hello' }, s));
    const out = ok(
      await h.fm.assign(
        'python-execution',
        { code: 'open("data/in.txt").read().upper()' },
        { sessionId: s, timeoutMs: 15_000 },
      ),
    );
    expect(out.value).toBe("'HELLO'");
    expect(ok(await files({ op: 'read', path: 'data/in.txt' }, s)).content).toBe('hello');
    const listing = ok(await files({ op: 'list', path: '', recursive: true }, s));
    expect(listing.entries.map((e: any) => e.path)).toEqual(['data', 'data/in.txt']);
    expect(ok(await files({ op: 'stat', path: 'data/in.txt' }, s))).toMatchObject({ type: 'file', size: 5 });
    ok(await files({ op: 'move', from: 'data/in.txt', to: 'out/moved.txt' }, s));
    fail(await files({ op: 'read', path: 'data/in.txt' }, s), 'file_not_found');
    const dl = await files({ op: 'download', path: 'out/moved.txt' }, s);
    expect(dl.type === 'task.result' && Buffer.from(dl.artifacts?.[0]?.data ?? '', 'base64').toString()).toBe(
      'hello',
    );
    ok(await files({ op: 'delete', path: 'out', recursive: true }, s));
    fail(await files({ op: 'stat', path: 'out' }, s), 'file_not_found');
  });

  test('binary upload (base64, Buffer JSON, artifact) round-trips', async () => {
    const s = sid('bin');
    const bytes = Buffer.from([0, 1, 2, 250, 255, 10, 13]);
    ok(await files({ op: 'upload', path: 'a.bin', data: bytes.toString('base64') }, s));
    ok(await files({ op: 'upload', path: 'b.bin', data: JSON.parse(JSON.stringify(bytes)) }, s));
    ok(
      await files(
        {
          op: 'upload',
          path: 'c.bin',
          artifact: { name: 'c.bin', encoding: 'base64', data: bytes.toString('base64') },
        },
        s,
      ),
    );
    const out = ok(
      await h.fm.assign(
        'python-execution',
        {
          code: '[open(n, "rb").read() for n in ("a.bin", "b.bin", "c.bin")] == [bytes([0,1,2,250,255,10,13])] * 3',
        },
        { sessionId: s, timeoutMs: 15_000 },
      ),
    );
    expect(out.value).toBe('True');
    expect(ok(await files({ op: 'read', path: 'a.bin', encoding: 'base64' }, s)).content).toBe(
      bytes.toString('base64'),
    );
  });

  test('traversal, absolute paths and oversize transfers are refused', async () => {
    const s = sid('bad');
    fail(await files({ op: 'read', path: 'x' }, s), 'session_not_found');
    ok(await files({ op: 'mkdir', path: 'd' }, s));
    fail(await files({ op: 'read', path: '../../etc/passwd' }, s), 'path_outside_workspace');
    fail(await files({ op: 'write', path: '/etc/x', content: 'x' }, s), 'path_outside_workspace');
    fail(await files({ op: 'write', path: 'a/../../x', content: 'x' }, s), 'path_outside_workspace');
    fail(
      await files({ op: 'write', path: 'big', content: 'x'.repeat(1024 * 1024 + 1) }, s),
      'file_too_large',
    );
    ok(
      await h.fm.assign(
        'python-execution',
        { code: 'open("big2", "wb").write(b"x" * (2 * 1024 * 1024))' },
        { sessionId: s, timeoutMs: 15_000 },
      ),
    );
    fail(await files({ op: 'read', path: 'big2' }, s), 'file_too_large');
    fail(await files({ op: 'read', path: 'nope.txt' }, s), 'file_not_found');
    fail(
      await h.fm.assign('file-operations', { op: 'read', path: 'x' }, { timeoutMs: 5_000 }),
      'invalid_payload',
    );
  });
});

describe('package-install', () => {
  test('installs a wheel from the local wheel directory into the session', async () => {
    const s = sid('pip');
    const res = ok(
      await h.fm.assign(
        'package-install',
        { packages: ['fleetdemo==1.2.3'] },
        { sessionId: s, timeoutMs: 120_000 },
      ),
    );
    expect(res.installed).toContain('fleetdemo-1.2.3');
    const out = ok(
      await h.fm.assign(
        'python-execution',
        { code: 'import fleetdemo\nfleetdemo.greet("agent")' },
        { sessionId: s, timeoutMs: 15_000 },
      ),
    );
    expect(out.value).toBe("'hello agent from fleetdemo'");
  }, 150_000);

  test('a missing package fails fast with pip message; option smuggling is refused', async () => {
    const s = sid('pip2');
    const started = Date.now();
    const err = fail(
      await h.fm.assign(
        'package-install',
        { packages: ['no-such-package-xyz'] },
        { sessionId: s, timeoutMs: 120_000 },
      ),
      'package_install_failed',
    );
    expect(err.message).toMatch(/No matching distribution|Could not find a version/);
    expect(Date.now() - started).toBeLessThan(60_000);
    fail(
      await h.fm.assign(
        'package-install',
        { packages: ['--index-url=http://evil'] },
        { sessionId: s, timeoutMs: 5_000 },
      ),
      'invalid_payload',
    );
  }, 150_000);
});

describe('code-analysis', () => {
  test('reports definitions, complexity, pyflakes findings and risky calls without running the code', async () => {
    const code = [
      'import os, json',
      'import subprocess as sp',
      '',
      'class Greeter(object):',
      '    """Says hello."""',
      '    def hi(self, name: str) -> str:',
      '        """Greets."""',
      '        return "hi " + name',
      '',
      'def branchy(x, y=2):',
      '    if x and y:',
      '        return 1',
      '    for i in range(x):',
      '        if i % 2:',
      '            continue',
      '    return undefined_thing',
      '',
      'sp.run(["ls"])',
      'eval("1+1")',
      'os.system("echo")',
      'open("/tmp/pwned", "w")',
    ].join('\n');
    const out = ok(await h.fm.assign('code-analysis', { code }, { timeoutMs: 30_000 }));
    expect(out.valid).toBe(true);
    expect(out.pyflakes).toBe(true);
    expect(out.classes[0]).toMatchObject({ name: 'Greeter', docstring: 'Says hello.', bases: ['object'] });
    expect(out.classes[0].methods[0].signature).toBe('def hi(self, name: str) -> str');
    expect(out.functions[0]).toMatchObject({ name: 'branchy', signature: 'def branchy(x, y=2)' });
    expect(out.complexity.find((c: any) => c.name === 'branchy').complexity).toBe(5);
    expect(out.undefinedNames.map((u: any) => u.name)).toEqual(['undefined_thing']);
    expect(out.unusedImports.map((u: any) => u.name)).toEqual(['json']);
    const rules = out.security.map((f: any) => f.call ?? f.rule);
    expect(rules).toEqual(
      expect.arrayContaining(['subprocess.run', 'eval', 'os.system', 'import:subprocess']),
    );
    expect(out.imports.map((i: any) => i.module)).toEqual(['os', 'json', 'subprocess']);
  });

  test('syntax errors come back with line and column; hostile nesting does not break the analyzer', async () => {
    const out = ok(await h.fm.assign('code-analysis', { code: 'x = (1,\ny = 2' }, { timeoutMs: 30_000 }));
    expect(out.valid).toBe(false);
    expect(out.syntaxErrors[0].line).toBeGreaterThan(0);
    expect(out.syntaxErrors[0].column).toBeGreaterThan(0);
    const deep = ok(
      await h.fm.assign(
        'code-analysis',
        { code: `x = ${'['.repeat(5000)}${']'.repeat(5000)}` },
        { timeoutMs: 30_000 },
      ),
    );
    expect(deep.valid).toBe(false);
    const after = ok(
      await h.fm.assign('code-analysis', { code: 'def f():\n    return 1' }, { timeoutMs: 30_000 }),
    );
    expect(after.functions[0].name).toBe('f');
  });
});
