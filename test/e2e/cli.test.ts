/**
 * The operator's day with the real `fleet` binary: a `fleet up -c fleet.yaml` on free ports in a temporary
 * directory, and the client commands run beside it as a user runs them. Each describe block is one point of
 * the CLI's promises (README, docs/errors.md).
 */
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { cleanEnv, fleet, fleetInPty, makeFleetDir, startCliFleet, type CliFleet } from '../helpers/cli.js';
import { CLI, freePort, waitFor } from '../helpers/processes.js';

describe('config typos are errors that name the key', () => {
  it('fleet up refuses an unknown manager key with a suggestion, exit 2, one line', async () => {
    const dir = await makeFleetDir('manager:\n  prot: 4500\n');
    try {
      const r = await fleet(['up', '--only', 'echo'], { cwd: dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(
        'fleet: config_invalid: invalid configuration: manager: unknown key "prot" (did you mean "port"?)\n',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a typo inside a worker section and inside its kind sub-section', async () => {
    const dir = await makeFleetDir(
      'python_sandbox:\n  max_concurent_tasks: 3\n  sandbox:\n    memroy_mb: 256\n',
    );
    try {
      const r = await fleet(['up', '--only', 'echo'], { cwd: dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(
        /python_sandbox: unknown key "max_concurent_tasks" \(did you mean "max_concurrent_tasks"\?\)/,
      );
      expect(r.stderr).toMatch(
        /python_sandbox\.sandbox: unknown key "memroy_mb" \(did you mean "memory_mb"\?\)/,
      );
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a FLEET_* variable Fleet does not read, for up and for client commands', async () => {
    const up = await fleet(['up', '--only', 'echo'], { env: cleanEnv({ FLEET_PROT: '4500' }) });
    expect(up.code).toBe(2);
    expect(up.stderr).toMatch(
      /^fleet: config_invalid: unknown environment variable FLEET_PROT \(did you mean FLEET_PORT\?\)/,
    );
    const status = await fleet(['status'], { env: cleanEnv({ FLEET_TOKN: 'x' }) });
    expect(status.code).toBe(2);
    expect(status.stderr).toMatch(/FLEET_TOKN \(did you mean FLEET_TOKEN\?\)/);
  });
});

describe('shell completion and help', () => {
  it('fleet completion bash completes commands and options in a real bash', async () => {
    const script = await fleet(['completion', 'bash']);
    expect(script.code).toBe(0);
    const complete = (words: string[]) =>
      new Promise<string>((resolve, reject) => {
        const p = spawn('bash', [
          '--norc',
          '--noprofile',
          '-c',
          [
            'eval "$(cat)"',
            `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}`,
            '_fleet; printf "%s\\n" "${COMPREPLY[@]}"',
          ].join('\n'),
        ]);
        let out = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.once('error', reject);
        p.once('exit', () => resolve(out));
        p.stdin.end(script.stdout);
      });
    expect((await complete(['fleet', 'su'])).split('\n')).toContain('submit');
    expect((await complete(['fleet', 're'])).trim().split('\n').sort()).toEqual([
      'restart',
      'resume',
      'retry',
    ]);
    expect((await complete(['fleet', 'submit', '--j'])).trim()).toBe('--json');
    expect((await complete(['fleet', 'logs', '--fo'])).trim()).toBe('--follow');
  });

  it('zsh and fish scripts name every command; an unknown shell is a usage error', async () => {
    const zsh = await fleet(['completion', 'zsh']);
    expect(zsh.stdout).toContain('bashcompinit');
    expect(zsh.stdout).toContain('complete -F _fleet fleet');
    const fish = await fleet(['completion', 'fish']);
    for (const c of ['up', 'submit', 'status', 'tasks', 'artifacts', 'logs', 'resume', 'completion'])
      expect(fish.stdout).toContain(`-n __fish_use_subcommand -a ${c} `);
    expect(fish.stdout).toContain("-n '__fish_seen_subcommand_from submit' -l json");
    const bad = await fleet(['completion', 'tcsh']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('fleet: usage: no completion for shell "tcsh" (bash, zsh or fish)\n');
  });

  it("help speaks the operator's words, with examples and the exit codes", async () => {
    const help = await fleet(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Examples:/);
    expect(help.stdout).toMatch(/exit 1 \(task failed\), 2 \(usage\/config\), 3 \(manager unreachable\)/);
    const all = [help.stdout];
    for (const c of ['up', 'manager', 'worker', 'submit', 'status', 'tasks', 'logs', 'artifacts'])
      all.push((await fleet([c, '--help'])).stdout);
    for (const text of all) expect(text).not.toMatch(/\bspec\b|embedded mode|dials|Worker Status Board/);
  }, 90_000);
});

describe('logs for people on a terminal, JSON for machines', () => {
  /**
   * `fleet up --only echo` until the manager has logged its worker's connection (at most `seconds`), then
   * SIGINT, the way a person stops it. Waiting for the line rather than a fixed time keeps this true on a
   * loaded machine, where the echo child can take many seconds to start.
   */
  async function upFor(seconds: number, extraArgs: string[], env: Record<string, string>, tty: boolean) {
    const port = await freePort();
    const echo = await freePort();
    const dir = await makeFleetDir(`manager:\n  port: ${port}\necho:\n  port: ${echo}\n`);
    try {
      const args = ['up', '--only', 'echo', ...extraArgs];
      return await new Promise<string>((resolve) => {
        // `script` gives the process a terminal; a Ctrl-C written to it is the SIGINT of a person's keyboard.
        const cmd = [process.execPath, CLI, ...args].map((a) => `'${a}'`).join(' ');
        const p = tty
          ? spawn('script', ['-qec', cmd, '/dev/null'], { cwd: dir, env: cleanEnv(env) })
          : spawn(process.execPath, [CLI, ...args], { cwd: dir, env: cleanEnv(env) });
        let out = '';
        let stopped = false;
        const stop = () => {
          if (stopped) return;
          stopped = true;
          if (tty) p.stdin.write('\x03');
          else p.kill('SIGINT');
        };
        const deadline = setTimeout(stop, seconds * 1000);
        const take = (d: Buffer) => {
          out += d.toString();
          if (/worker connected/.test(out)) stop();
        };
        (tty ? p.stdout : p.stderr).on('data', take);
        p.once('exit', () => {
          clearTimeout(deadline);
          resolve(out);
        });
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  const eventLines = (out: string) =>
    out
      .replace(/\r/g, '')
      .split('\n')
      .filter((l) => /worker connected|listening/.test(l));

  it('on a terminal: one short readable line per event, no JSON', async () => {
    const out = await upFor(45, [], {}, true);
    const lines = eventLines(out);
    expect(lines.length, out).toBeGreaterThanOrEqual(2);
    // eslint-disable-next-line no-control-regex -- colours are part of a terminal's line
    const plain = lines.map((l) => l.replace(/\x1b\[[0-9;]*m/g, ''));
    expect(
      plain.some((l) =>
        /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: manager: worker connected {2}workerId=echo-/.test(l),
      ),
    ).toBe(true);
    for (const l of plain) {
      expect(l).not.toMatch(/^\{"level"/);
      expect(l.length).toBeLessThan(250);
    }
  }, 120_000);

  it('--log-format json on a terminal, and JSON by default when not a terminal', async () => {
    for (const out of [await upFor(45, ['--log-format', 'json'], {}, true), await upFor(45, [], {}, false)]) {
      const lines = eventLines(out);
      expect(lines.length, out).toBeGreaterThanOrEqual(2);
      for (const l of lines) expect(JSON.parse(l)).toHaveProperty('level');
    }
  }, 120_000);

  it('FLEET_LOG_FORMAT=pretty when not a terminal; a bad format is a usage error', async () => {
    const lines = eventLines(await upFor(45, [], { FLEET_LOG_FORMAT: 'pretty' }, false));
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const l of lines) expect(l).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: (manager|echo): /);
    const bad = await fleet(['up', '--log-format', 'xml']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^fleet: config_invalid: log format "xml" is not one of auto, pretty, json/);
  }, 120_000);
});

// Each test runs the CLI many times, a second or more each on a loaded two-core machine.
describe(
  'against a running fleet up -c fleet.yaml (echo and python workers, free ports)',
  { timeout: 120_000 },
  () => {
    let f: CliFleet;

    beforeAll(async () => {
      f = await startCliFleet({ upArgs: ['--only', 'echo,python-sandbox'], online: 2 });
    }, 90_000);

    afterAll(async () => {
      await f?.stop();
    });

    describe('client commands find the manager through the same config as up', () => {
      it('reads ./fleet.yaml in the current directory', async () => {
        const r = await f.run(['status']);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(/echo.*Online/);
      });

      it('reads -c and FLEET_CONFIG from anywhere; --url and FLEET_URL win', async () => {
        const elsewhere = { env: cleanEnv(), cwd: '/' };
        const byFlag = await fleet(['status', '-c', `${f.dir}/fleet.yaml`], elsewhere);
        expect(byFlag.code).toBe(0);
        const byEnv = await fleet(['status'], {
          cwd: '/',
          env: cleanEnv({ FLEET_CONFIG: `${f.dir}/fleet.yaml` }),
        });
        expect(byEnv.code).toBe(0);
        const byUrl = await fleet(['status', '--url', f.url], elsewhere);
        expect(byUrl.code).toBe(0);
        const byUrlEnv = await fleet(['status'], { cwd: '/', env: cleanEnv({ FLEET_URL: f.url }) });
        expect(byUrlEnv.code).toBe(0);
      });

      it('says which source it used when nothing answers there (exit 3)', async () => {
        const closed = await freePort();
        const dir = await makeFleetDir(`manager:\n  port: ${closed}\n`);
        try {
          const r = await fleet(['status'], { cwd: dir });
          expect(r.code).toBe(3);
          expect(r.stderr).toMatch(
            new RegExp(
              `^fleet: manager_unreachable: cannot reach the Fleet manager at http://127\\.0\\.0\\.1:${closed}: .*; the URL came from fleet\\.yaml \\(manager\\.host/port\\)\\n$`,
            ),
          );
          const byUrl = await fleet(['tasks', '--url', `http://127.0.0.1:${closed}`], { cwd: '/' });
          expect(byUrl.code).toBe(3);
          expect(byUrl.stderr).toMatch(/the URL came from --url\n$/);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      });
    });

    describe('a failed task is one line and a hint; the record on request', () => {
      const blocked = JSON.stringify({
        code: 'url_blocked',
        message: 'navigation refused by the URL policy: 10.1.2.3 is in a private range',
      });

      it('prints fleet: <code>: <message> and the setting that helps, exit 1', async () => {
        const r = await f.run(['submit', 'fail', blocked]);
        expect(r.code).toBe(1);
        expect(r.stdout).toBe('');
        const lines = r.stderr.trimEnd().split('\n');
        expect(lines).toHaveLength(2);
        expect(lines[0]).toBe(
          'fleet: url_blocked: navigation refused by the URL policy: 10.1.2.3 is in a private range',
        );
        expect(lines[1]).toMatch(/^hint: .*browser_worker\.browser_config\.url_policy\.allowed_addresses/);
      });

      it('--json and -v print the whole record on stdout as well', async () => {
        for (const flag of ['--json', '-v']) {
          const r = await f.run(['submit', 'fail', blocked, flag]);
          expect(r.code).toBe(1);
          const record = JSON.parse(r.stdout) as {
            state: string;
            error: { code: string };
            attempts: unknown[];
          };
          expect(record).toMatchObject({ state: 'failed', error: { code: 'url_blocked' } });
          expect(record.attempts.length).toBeGreaterThan(0);
          expect(r.stderr).toMatch(/^fleet: url_blocked: /);
        }
      });

      it('a success prints the result only', async () => {
        const r = await f.run(['submit', 'echo', '{"hello":"fleet"}']);
        expect(r.code).toBe(0);
        const out = JSON.parse(r.stdout) as Record<string, unknown>;
        expect(out).toMatchObject({ state: 'succeeded', output: { hello: 'fleet' } });
        expect(Object.keys(out).sort()).toEqual(['id', 'output', 'state']);
      });
    });

    describe('artifacts from the command line', () => {
      const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
      const payload = (name: string) =>
        JSON.stringify({ artifact: { name, contentType: 'image/png', base64: png.toString('base64') } });

      it('submit --out saves every artifact and prints the paths; URLs are absolute', async () => {
        const r = await f.run(['submit', 'echo', payload('figure.png'), '--out', 'out']);
        expect(r.code).toBe(0);
        const result = JSON.parse(r.stdout) as {
          artifacts: { url: string }[];
          saved: { path: string; size: number }[];
        };
        expect(result.artifacts[0]!.url).toMatch(
          new RegExp(`^${f.url}/api/tasks/.+/artifacts/figure\\.png$`),
        );
        const file = join(f.dir, 'out', 'figure.png');
        expect(result.saved).toEqual([expect.objectContaining({ path: file, size: png.length })]);
        expect(readFileSync(file)).toEqual(png);
        expect(r.stderr).toContain(`saved ${file}`);
      });

      it('fleet artifacts <id> fetches later, all or by name, and refuses unknown names', async () => {
        const sub = JSON.parse((await f.run(['submit', 'echo', payload('later.png')])).stdout) as {
          id: string;
        };
        const list = await f.run(['artifacts', sub.id, '--list']);
        expect(list.stdout).toMatch(/^later\.png\timage\/png\t16\thttp:\/\//);
        const all = await f.run(['artifacts', sub.id, '-o', 'later']);
        expect(all.code).toBe(0);
        expect(all.stdout).toBe(`${join(f.dir, 'later', 'later.png')}\n`);
        const named = await f.run(['artifacts', sub.id, 'later.png', '-o', 'named']);
        expect(readFileSync(join(f.dir, 'named', 'later.png'))).toEqual(png);
        expect(named.code).toBe(0);
        const wrong = await f.run(['artifacts', sub.id, 'nope.png']);
        expect(wrong.code).toBe(4);
        expect(wrong.stderr).toBe(
          `fleet: not_found: task ${sub.id} has no artifact "nope.png" (it has later.png)\n`,
        );
      });

      it('a worker-chosen name cannot write outside the directory', async () => {
        const r = await f.run(['submit', 'echo', payload('../../escape.png'), '--out', 'jail']);
        // The manager keeps the name as the worker gave it; the CLI makes it a file name inside the directory.
        expect(r.code).toBe(0);
        expect(readdirSync(join(f.dir, 'jail'))).toEqual(['escape.png']);
        expect(existsSync(join(f.dir, 'escape.png'))).toBe(false);
        expect(existsSync(join(f.dir, '..', 'escape.png'))).toBe(false);
      });
    });

    describe("progress and the task's output while it runs", () => {
      const sleep = JSON.stringify({ ms: 2500, progressEvery: 500 });

      it('not a terminal: one line per progress report on stderr, the result alone on stdout', async () => {
        const r = await f.run(['submit', 'sleep', sleep]);
        expect(r.code).toBe(0);
        expect(JSON.parse(r.stdout)).toMatchObject({ state: 'succeeded' });
        const lines = r.stderr.trimEnd().split('\n');
        expect(lines.length).toBeGreaterThanOrEqual(2);
        for (const l of lines) expect(l).toMatch(/^progress \d+% slept \d+ of 2500 ms$/);
        expect(r.stderr).not.toContain('\x1b');
      });

      it('--quiet: nothing on stderr', async () => {
        const r = await f.run(['submit', 'sleep', sleep, '--quiet']);
        expect(r.code).toBe(0);
        expect(r.stderr).toBe('');
      });

      it('a terminal: a progress bar redrawn in place and cleared before the result', async () => {
        const r = await fleetInPty(['submit', 'sleep', sleep], { cwd: f.dir });
        expect(r.code).toBe(0);
        // eslint-disable-next-line no-control-regex -- the escape the bar is redrawn with is the point
        const bars = r.output.match(/\r\x1b\[2K\[#*-*\] +\d+% slept \d+ of 2500 ms/g) ?? [];
        expect(bars.length).toBeGreaterThanOrEqual(2);
        // Redrawn, never a new line per report; cleared before the result is printed.
        expect(r.output).not.toMatch(/^progress /m);
        const cleared = r.output.lastIndexOf('\r\x1b[2K');
        const result = r.output.indexOf('"state": "succeeded"');
        expect(result).toBeGreaterThan(cleared);
      });

      it("streams a python task's stdout and stderr to stderr while the task still runs", async () => {
        const code = [
          'import sys, time',
          'print("tick 0", flush=True)',
          'print("warn 0", file=sys.stderr, flush=True)',
          'time.sleep(4)',
          'print("tick 1", flush=True)',
        ].join('\n');
        const proc = spawn(process.execPath, [CLI, 'submit', 'python-execution', JSON.stringify({ code })], {
          cwd: f.dir,
          env: cleanEnv(),
        });
        let stderr = '';
        let stdout = '';
        proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        const exited = new Promise<number>((r) => proc.once('exit', (c) => r(c ?? -1)));
        await waitFor(() => stderr.includes('tick 0'), 30_000, 'the first line of output');
        // Seen while the task is still running: streamed, not printed at the end.
        const running = await f.run([
          'tasks',
          '--json',
          '--state',
          'running',
          '--capability',
          'python-execution',
        ]);
        expect(JSON.parse(running.stdout)).toHaveLength(1);
        expect(stdout).toBe('');
        expect(await exited).toBe(0);
        expect(stderr).toContain('warn 0');
        expect(stderr).toContain('tick 1');
        expect(JSON.parse(stdout)).toMatchObject({ state: 'succeeded' });
      }, 60_000);

      it('fleet logs <id> --follow streams a task submitted earlier and ends with it', async () => {
        const queued = JSON.parse((await f.run(['submit', 'sleep', sleep, '--no-wait'])).stdout) as {
          id: string;
        };
        const r = await f.run(['logs', queued.id, '--follow']);
        expect(r.code).toBe(0);
        expect(r.stderr).toMatch(/^progress \d+% slept \d+ of 2500 ms$/m);
        const failed = JSON.parse(
          (await f.run(['submit', 'fail', '{"code":"handler_error","message":"boom"}', '--no-wait'])).stdout,
        ) as { id: string };
        const later = await f.run(['logs', failed.id, '--follow']);
        expect(later.code).toBe(1);
        expect(later.stderr).toMatch(/^fleet: handler_error: boom$/m);
      });

      it('fleet logs <id> of a finished python task prints its output', async () => {
        const done = JSON.parse(
          (await f.run(['submit', 'python-execution', '{"code":"print(\\"hello from python\\")"}', '-q']))
            .stdout,
        ) as { id: string };
        const r = await f.run(['logs', done.id]);
        expect(r.code).toBe(0);
        expect(r.stdout).toBe('hello from python\n');
      });
    });

    describe('tasks as a table, --json for scripts, task <id> for one', () => {
      it('lists tasks in a table with the columns people read', async () => {
        for (let i = 0; i < 3; i++) await f.run(['submit', 'echo', `{"n":${i},"pad":"${'x'.repeat(500)}"}`]);
        const r = await f.run(['tasks']);
        expect(r.code).toBe(0);
        expect(r.stdout).toMatch(
          /ID\s+│\s+State\s+│\s+Capability\s+│\s+Worker\s+│\s+Attempt\s+│\s+Duration\s+│\s+Age/,
        );
        expect(r.stdout).toMatch(/succeeded\s+│\s+echo\s+│/);
        // Payloads are not printed: the table stays a line per task.
        expect(r.stdout).not.toContain('xxxxxxxxxx');
      });

      it('--json, --limit and filters', async () => {
        const all = JSON.parse((await f.run(['tasks', '--json'])).stdout) as { id: string; state: string }[];
        expect(all.length).toBeGreaterThanOrEqual(3);
        const one = JSON.parse((await f.run(['tasks', '--json', '--limit', '1'])).stdout) as unknown[];
        expect(one).toHaveLength(1);
        const failed = JSON.parse((await f.run(['tasks', '--json', '--state', 'failed'])).stdout) as {
          state: string;
        }[];
        expect(failed.every((t) => t.state === 'failed')).toBe(true);
        const echoes = JSON.parse((await f.run(['tasks', '--json', '--capability', 'echo'])).stdout) as {
          capability: string;
        }[];
        expect(echoes.length).toBeGreaterThan(0);
        expect(echoes.every((t) => t.capability === 'echo')).toBe(true);

        const id = all[0]!.id;
        const shown = await f.run(['task', id]);
        expect(shown.code).toBe(0);
        expect(shown.stdout).toMatch(new RegExp(`^id\\s+${id}$`, 'm'));
        expect(shown.stdout).toMatch(/^state\s+\w+/m);
        const json = JSON.parse((await f.run(['task', id, '--json'])).stdout) as { id: string };
        expect(json.id).toBe(id);
        const missing = await f.run(['task', 'no-such-task']);
        expect(missing.code).toBe(4);
        expect(missing.stderr).toMatch(/^fleet: not_found: /);
      });
    });

    describe('every error path: one line (and maybe a hint), the exit code docs/errors.md gives its code', () => {
      /** code → exit, read from the exit-code table in docs/errors.md ("every other code" is 4). */
      const documented = (() => {
        const doc = readFileSync(join(__dirname, '../../docs/errors.md'), 'utf8');
        const table = doc.slice(doc.indexOf('## The `fleet` command'));
        const map = new Map<string, number>();
        for (const line of table.split('\n')) {
          const m = /^\|\s*(\d)\s*\|[^|]*\|([^|]*)\|/.exec(line);
          if (!m) continue;
          const exit = Number(m[1]);
          if (m[2]!.includes('every other code')) map.set('*', exit);
          for (const c of m[2]!.matchAll(/`([a-z_]+)`/g)) map.set(c[1]!, exit);
        }
        return (code: string) => map.get(code) ?? map.get('*');
      })();

      function expectOneError(
        r: { code: number; stderr: string },
        code: string,
        message: RegExp,
        exit = documented(code),
      ): void {
        const lines = r.stderr.trimEnd().split('\n');
        expect(lines.length, r.stderr).toBeLessThanOrEqual(2);
        expect(lines[0]).toMatch(new RegExp(`^fleet: ${code}: `));
        expect(lines[0]).toMatch(message);
        if (lines[1] !== undefined) expect(lines[1]).toMatch(/^hint: \S/);
        expect(r.code, r.stderr).toBe(exit);
      }

      it('reads the exit-code table from the docs', () => {
        expect(documented('config_invalid')).toBe(2);
        expect(documented('manager_unreachable')).toBe(3);
        expect(documented('not_found')).toBe(4);
        expect(documented('internal')).toBe(5);
      });

      it('command-line mistakes are usage errors', async () => {
        expectOneError(await f.run(['submit']), 'usage', /missing required argument 'capability'/);
        expectOneError(await f.run(['status', '--bogus']), 'usage', /unknown option '--bogus'/);
        expectOneError(await f.run(['statsu']), 'usage', /unknown command 'statsu'.*status/);
        expectOneError(await f.run(['tasks', '--limit', 'many']), 'usage', /--limit.*non-negative integer/);
      });

      it('configuration mistakes are config_invalid', async () => {
        const dir = await makeFleetDir('manager: [not, a, mapping\n');
        try {
          expectOneError(await fleet(['status'], { cwd: dir }), 'config_invalid', /not valid YAML/);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
        expectOneError(
          await f.run(['up', '--only', 'ech']),
          'config_invalid',
          /unknown worker kind "ech" \(did you mean "echo"\?/,
        );
        expectOneError(
          await f.run(['worker', 'pyhton']),
          'config_invalid',
          /unknown worker kind "pyhton" \(did you mean "python"\?/,
        );
      });

      it('a port in use is config_invalid for the manager and for a worker alike', async () => {
        expectOneError(
          await f.run(['up', '--only', 'echo', '--port', String(f.port)]),
          'config_invalid',
          new RegExp(`cannot listen on .*:${f.port}: the address is already in use`),
        );
        expectOneError(
          await f.run(['manager', '--port', String(f.port)]),
          'config_invalid',
          /already in use/,
        );
        expectOneError(
          await f.run(['worker', 'echo', '--port', String(f.echoPort)]),
          'config_invalid',
          new RegExp(`${f.echoPort}`),
        );
      });

      it('refusals by the manager', async () => {
        expectOneError(
          await f.run(['submit', 'ech', '{}']),
          'unknown_capability',
          /no worker type offers "ech"/,
        );
        // The manager's message names the likely fix; the CLI adds no second hint.
        expect((await f.run(['submit', 'ech', '{}'])).stderr).toMatch(
          /^fleet: unknown_capability: no worker type offers "ech" \(did you mean "echo"\?\)\n$/,
        );
        expectOneError(await f.run(['submit', 'echo', '{oops']), 'invalid_task', /payload is not JSON/);
        expectOneError(
          await f.run(['submit', 'echo', '{}', '--priority', 'high']),
          'invalid_task',
          /priority/,
        );
        expectOneError(await f.run(['task', 'nope']), 'not_found', /nope/);
        expectOneError(await f.run(['cancel', 'nope']), 'not_found', /nope/);
        expectOneError(await f.run(['logs', 'nope']), 'not_found', /nope/);
        expectOneError(await f.run(['artifacts', 'nope']), 'not_found', /nope/);
        expectOneError(await f.run(['drain', 'no-such-worker']), 'not_found', /no-such-worker/);
      });

      it('a task that fails, times out or is cancelled', async () => {
        expectOneError(
          await f.run([
            'submit',
            'fail',
            '{"code":"python_error","message":"ZeroDivisionError: division by zero"}',
          ]),
          'python_error',
          /ZeroDivisionError/,
          1,
        );
        // The task's own code, exit 1 (documented as "the task ran and did not succeed").
        expect(documented('*')).toBe(4);
        expectOneError(
          await f.run(['submit', 'sleep', '{"ms":20000}', '--timeout', '300']),
          'timeout',
          /./,
          1,
        );
        const queued = JSON.parse((await f.run(['submit', 'sleep', '{"ms":20000}', '--no-wait'])).stdout) as {
          id: string;
        };
        expect((await f.run(['cancel', queued.id])).code).toBe(0);
        expectOneError(await f.run(['logs', queued.id]), 'cancelled', /./, 1);
      });

      it('a wrong token is unauthorized, with the settings that carry one', async () => {
        const port = await freePort();
        const dir = await makeFleetDir(`manager:\n  port: ${port}\n  token: right-token\n`);
        const proc = spawn(process.execPath, [CLI, 'manager'], {
          cwd: dir,
          env: cleanEnv(),
          stdio: 'ignore',
        });
        try {
          await waitFor(
            async () => (await fetch(`http://127.0.0.1:${port}/health`).catch(() => undefined))?.ok === true,
            30_000,
            'a manager with a token',
            100,
          );
          const r = await fleet(['status', '--token', 'wrong-token'], { cwd: dir });
          expectOneError(r, 'unauthorized', /token/);
          expect(r.stderr).toMatch(/\nhint: .*--token.*FLEET_TOKEN.*manager\.token/);
          // The same directory's fleet.yaml carries the right one.
          expect((await fleet(['status'], { cwd: dir })).code).toBe(0);
        } finally {
          proc.kill('SIGTERM');
          await new Promise((r) => proc.once('exit', r));
          rmSync(dir, { recursive: true, force: true });
        }
      });
    });

    describe('drain and resume, restart, retry; ids stable across restarts', () => {
      interface W {
        workerId: string;
        workerType: string;
        status: string;
        draining: boolean;
        info: { pid?: number };
      }
      const echoWorker = async (): Promise<W> => {
        const workers = JSON.parse((await f.run(['workers'])).stdout) as W[];
        return workers.find((w) => w.workerType === 'echo')!;
      };

      it('the echo worker id is its name, host and port', async () => {
        const w = await echoWorker();
        expect(w.workerId).toMatch(new RegExp(`^echo-.+-${f.echoPort}$`));
      });

      it('drain shows Draining (not Busy), holds new tasks; resume lets them run', async () => {
        const { workerId } = await echoWorker();
        expect((await f.run(['drain', workerId])).stdout).toBe(`draining ${workerId}\n`);
        await waitFor(async () => (await echoWorker()).draining, 10_000, 'the worker to report draining');
        const board = (await f.run(['status'])).stdout;
        expect(board).toMatch(/echo.*Draining/);
        expect(board).not.toMatch(/echo.*Busy/);
        const held = JSON.parse((await f.run(['submit', 'echo', '{"held":true}', '--no-wait'])).stdout) as {
          id: string;
        };
        await new Promise((r) => setTimeout(r, 1500));
        expect(JSON.parse((await f.run(['task', held.id, '--json'])).stdout)).toMatchObject({
          state: 'queued',
        });
        expect((await f.run(['resume', workerId])).stdout).toBe(`resumed ${workerId}\n`);
        const done = await f.run(['logs', held.id, '--follow']);
        expect(done.code).toBe(0);
        expect(JSON.parse((await f.run(['task', held.id, '--json'])).stdout)).toMatchObject({
          state: 'succeeded',
        });
        expect((await f.run(['status'])).stdout).toMatch(/echo.*Online/);
      });

      it('restart gives a new process under the same id', async () => {
        const before = await echoWorker();
        expect((await f.run(['restart', before.workerId])).stdout).toBe(`restarting ${before.workerId}\n`);
        await waitFor(
          async () => {
            const w = await echoWorker().catch(() => undefined);
            return w?.status === 'online' && w.info.pid !== before.info.pid;
          },
          30_000,
          'the restarted echo worker',
          200,
        );
        const after = await echoWorker();
        expect(after.workerId).toBe(before.workerId);
        expect(after.info.pid).not.toBe(before.info.pid);
        const r = await f.run(['submit', 'echo', '{"after":"restart"}']);
        expect(r.code).toBe(0);
      });

      it('retry runs a finished task again', async () => {
        const failed = JSON.parse(
          (await f.run(['submit', 'fail', '{"message":"again"}', '--no-wait'])).stdout,
        ) as { id: string };
        await f.run(['logs', failed.id, '--follow']);
        const r = await f.run(['retry', failed.id]);
        expect(r.code).toBe(1);
        expect(r.stderr).toMatch(/^fleet: handler_error: again$/m);
        const unknown = await f.run(['resume', 'no-such-worker']);
        expect(unknown.code).toBe(4);
      });
    });
  },
);
