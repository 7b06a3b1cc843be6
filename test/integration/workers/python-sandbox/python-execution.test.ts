/* eslint-disable @typescript-eslint/no-explicit-any -- task outputs are JSON the tests inspect field by field */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { fail, ok, sid, startPythonWorker, type Harness } from './helpers.js';

let h: Harness;
beforeAll(async () => {
  h = await startPythonWorker();
}, 60_000);
afterAll(async () => {
  await h?.stop();
});

describe('python-execution on the real sandbox', () => {
  test('/health reports the isolation level in force', async () => {
    const body = (await (await fetch(`${h.baseUrl}/health`)).json()) as Record<string, any>;
    const text = JSON.stringify(body);
    expect(text).toContain('"level":"strong"');
    expect(text).toContain('"secure":true');
    const metrics = await (await fetch(`${h.baseUrl}/metrics`)).text();
    expect(metrics).toMatch(/fleet_python_sandbox_isolation\{level="strong",insecure="0"[^}]*\} 1/);
  });

  test('one-shot run returns stdout and the last expression', async () => {
    const out = ok(
      await h.fm.assign('python-execution', { code: 'print("hi")\n6*7' }, { timeoutMs: 20_000 }),
    );
    expect(out).toMatchObject({ ok: true, stdout: 'hi\n', value: '42', valueType: 'int', exitStatus: 0 });
    expect(out.sessionId).toBeUndefined();
  });

  test('a session keeps variables between tasks; one-shot runs do not', async () => {
    const s = sid();
    ok(
      await h.fm.assign(
        'python-execution',
        { code: 'counter = 10\ndef bump():\n    global counter\n    counter += 1\n    return counter' },
        { sessionId: s, timeoutMs: 20_000 },
      ),
    );
    ok(await h.fm.assign('python-execution', { code: 'bump()' }, { sessionId: s, timeoutMs: 20_000 }));
    const out = ok(
      await h.fm.assign('python-execution', { code: 'bump()' }, { sessionId: s, timeoutMs: 20_000 }),
    );
    expect(out.value).toBe('12');
    const other = ok(
      await h.fm.assign('python-execution', { code: "'counter' in globals()" }, { timeoutMs: 20_000 }),
    );
    expect(other.value).toBe('False');
  });

  test('stdout and stderr stream as progress while the code runs', async () => {
    const s = sid();
    const { taskId, answer } = h.fm.dispatch(
      'python-execution',
      {
        code: 'import sys, time\nprint("first", flush=True)\nprint("oops", file=sys.stderr)\ntime.sleep(0.8)\nprint("second")',
      },
      { sessionId: s, timeoutMs: 20_000 },
    );
    const seen: { stream: string; data: string; at: number }[] = [];
    h.fm.onProgress(taskId, (p) => {
      if (p.log) seen.push({ stream: p.log.stream, data: p.log.data, at: Date.now() });
    });
    const out = ok(await answer);
    const doneAt = Date.now();
    expect(out.stdout).toBe('first\nsecond\n');
    expect(out.stderr).toBe('oops\n');
    const first = seen.find((e) => e.data.includes('first'));
    expect(first?.stream).toBe('stdout');
    expect(doneAt - (first?.at ?? doneAt)).toBeGreaterThan(400);
    expect(seen.some((e) => e.stream === 'stderr' && e.data.includes('oops'))).toBe(true);
  });

  test('an exception is a result with the traceback; failOnError makes it python_error', async () => {
    const out = ok(
      await h.fm.assign(
        'python-execution',
        { code: 'print("before")\n{}["missing"]' },
        { timeoutMs: 20_000 },
      ),
    );
    expect(out.ok).toBe(false);
    expect(out.stdout).toBe('before\n');
    expect(out.error.type).toBe('KeyError');
    expect(out.error.traceback).toContain('KeyError');
    const err = fail(
      await h.fm.assign('python-execution', { code: '1/0', failOnError: true }, { timeoutMs: 20_000 }),
      'python_error',
    );
    expect(err.details?.error).toMatchObject({ type: 'ZeroDivisionError' });
  });

  test('syntax errors carry line and column', async () => {
    const out = ok(
      await h.fm.assign('python-execution', { code: 'x = 1\ndef f(:\n  pass' }, { timeoutMs: 20_000 }),
    );
    expect(out.error).toMatchObject({ type: 'SyntaxError', line: 2 });
    fail(
      await h.fm.assign('python-execution', { code: 'def f(:', failOnError: true }, { timeoutMs: 20_000 }),
      'syntax_error',
    );
  });

  test('a matplotlib figure comes back as a PNG artifact, written files can be collected', async () => {
    const code = [
      'import matplotlib.pyplot as plt, numpy as np',
      'x = np.linspace(0, 6.28, 50)',
      'plt.plot(x, np.sin(x))',
      'open("result.csv", "w").write("a,b\\n1,2\\n")',
    ].join('\n');
    const answer = await h.fm.assign(
      'python-execution',
      { code, collect: ['result.csv'] },
      { timeoutMs: 60_000 },
    );
    const out = ok(answer);
    expect(out.figures).toEqual(['figure-1.png']);
    expect(out.files).toEqual([{ path: 'result.csv', size: 8, change: 'created' }]);
    const artifacts = answer.type === 'task.result' ? (answer.artifacts ?? []) : [];
    const png = artifacts.find((a) => a.name === 'figure-1.png');
    expect(png?.contentType).toBe('image/png');
    const bytes = Buffer.from(png?.data ?? '', 'base64');
    expect(bytes.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
    expect(bytes.length).toBeGreaterThan(2000);
    const csv = artifacts.find((a) => a.name === 'result.csv');
    expect(Buffer.from(csv?.data ?? '', 'base64').toString()).toBe('a,b\n1,2\n');
  }, 90_000);

  test('soft timeout: KeyboardInterrupt, the session survives', async () => {
    const s = sid();
    ok(
      await h.fm.assign(
        'python-execution',
        { code: 'keep = "still here"' },
        { sessionId: s, timeoutMs: 20_000 },
      ),
    );
    const started = Date.now();
    const err = fail(
      await h.fm.assign(
        'python-execution',
        { code: 'import time\nprint("sleeping", flush=True)\ntime.sleep(60)' },
        { sessionId: s, timeoutMs: 2_000 },
      ),
      'timeout',
    );
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(err.details).toMatchObject({ sessionSurvived: true, stdout: 'sleeping\n' });
    const out = ok(
      await h.fm.assign('python-execution', { code: 'keep' }, { sessionId: s, timeoutMs: 20_000 }),
    );
    expect(out.value).toBe("'still here'");
  });

  test('hard timeout: code that ignores SIGINT is killed with its session', async () => {
    const s = sid();
    const code =
      'import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    time.sleep(0.01)';
    const err = fail(
      await h.fm.assign('python-execution', { code }, { sessionId: s, timeoutMs: 3_000 }),
      'timeout',
    );
    expect(err.details).toMatchObject({ sessionSurvived: false });
    const again = fail(
      await h.fm.assign('python-execution', { code: '1' }, { sessionId: s, timeoutMs: 20_000 }),
      'session_expired',
    );
    expect(again.details?.reason).toBe('killed: timeout');
    ok(
      await h.fm.assign(
        'python-execution',
        { code: '1', resetSession: true },
        { sessionId: s, timeoutMs: 20_000 },
      ),
    );
  });

  test('a cancel interrupts the run', async () => {
    const s = sid();
    const { taskId, answer } = h.fm.dispatch(
      'python-execution',
      { code: 'import time\ntime.sleep(60)' },
      { sessionId: s, timeoutMs: 30_000 },
    );
    await new Promise((r) => setTimeout(r, 700));
    h.fm.cancel(taskId, 'test');
    fail(await answer, 'cancelled');
    // The session is usable again once the interrupted run has unwound.
    let out: Record<string, any> | undefined;
    for (let i = 0; i < 50 && !out; i++) {
      const a = await h.fm.assign('python-execution', { code: '2+2' }, { sessionId: s, timeoutMs: 20_000 });
      if (a.type === 'task.result') out = a.output as Record<string, any>;
      else await new Promise((r) => setTimeout(r, 100));
    }
    expect(out?.value).toBe('4');
  });

  test('session_busy, session_not_found and closeSession', async () => {
    const s = sid();
    const slow = h.fm.assign(
      'python-execution',
      { code: 'import time\ntime.sleep(1.5)' },
      { sessionId: s, timeoutMs: 20_000 },
    );
    await new Promise((r) => setTimeout(r, 500));
    fail(
      await h.fm.assign('python-execution', { code: '1' }, { sessionId: s, timeoutMs: 20_000 }),
      'session_busy',
    );
    ok(await slow);
    fail(
      await h.fm.assign(
        'python-execution',
        { code: '1', requireSession: true },
        { sessionId: sid(), timeoutMs: 20_000 },
      ),
      'session_not_found',
    );
    ok(await h.fm.assign('python-execution', { closeSession: true }, { sessionId: s, timeoutMs: 20_000 }));
    fail(
      await h.fm.assign('python-execution', { code: '1' }, { sessionId: s, timeoutMs: 20_000 }),
      'session_expired',
    );
  }, 40_000);

  test('an output flood is cut with a marker', async () => {
    const out = ok(
      await h.fm.assign(
        'python-execution',
        { code: 'for i in range(200000):\n    print("x" * 100)' },
        { timeoutMs: 30_000 },
      ),
    );
    expect(out.truncated).toBe(true);
    expect(out.stdout.length).toBeLessThan(1024 * 1024 + 200);
    expect(out.stdout).toContain('[fleet: output truncated');
  }, 40_000);

  test('bad payloads are invalid_payload', async () => {
    fail(await h.fm.assign('python-execution', { code: 5 }, { timeoutMs: 5_000 }), 'invalid_payload');
    fail(await h.fm.assign('python-execution', {}, { timeoutMs: 5_000 }), 'invalid_payload');
  });
});

describe('session TTL', () => {
  test('an idle session expires with session_expired', async () => {
    const short = await startPythonWorker({ session_ttl: '1s', pool_size: 1 });
    try {
      const s = sid('ttl');
      ok(await short.fm.assign('python-execution', { code: 'a = 1' }, { sessionId: s, timeoutMs: 20_000 }));
      await new Promise((r) => setTimeout(r, 1600));
      const err = fail(
        await short.fm.assign('python-execution', { code: 'a' }, { sessionId: s, timeoutMs: 20_000 }),
        'session_expired',
      );
      expect(err.details?.reason).toBe('expired');
    } finally {
      await short.stop();
    }
  }, 60_000);
});
