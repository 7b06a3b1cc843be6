/**
 * As a new user would: `fleet up` in one shell, `fleet submit` and `fleet status` in another.
 * Ports are free ones so the suite can run beside a real fleet on the default ports.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFleetUp, type FleetUp } from '../helpers/fleet-up.js';
import { CLI, freePort } from '../helpers/processes.js';

const run = promisify(execFile);

describe('fleet up, submit and status from a shell', () => {
  let up: FleetUp | undefined;
  let env: NodeJS.ProcessEnv & { FLEET_PORT: string };

  beforeAll(async () => {
    env = {
      ...process.env,
      FLEET_PORT: String(await freePort()),
      WORKER_ECHO_PORT: String(await freePort()),
      WORKER_PYTHON_PORT: String(await freePort()),
      WORKER_BROWSER_PORT: String(await freePort()),
      FLEET_LOG_LEVEL: 'warn',
    };
    up = await startFleetUp(
      ['--only', 'echo,python-sandbox,browser-worker'],
      env,
      (workers) => workers.filter((w) => w.status === 'online').length === 3,
      'fleet up with three online workers',
    );
  }, 90_000);

  afterAll(async () => {
    await up?.stop();
  });

  it('fleet submit echo prints the result', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'submit', 'echo', '{"hello":"fleet"}'], { env });
    const out = JSON.parse(stdout) as { state: string; output: unknown };
    expect(out.state).toBe('succeeded');
    expect(out.output).toEqual({ hello: 'fleet' });
  });

  it('routes python-execution to the sandbox worker', async () => {
    const { stdout } = await run(
      process.execPath,
      [CLI, 'submit', 'python-execution', '{"code":"x = 6 * 7\\nprint(x)\\nx"}'],
      { env },
    );
    const out = JSON.parse(stdout) as { state: string; output: { stdout?: string } };
    expect(out.state).toBe('succeeded');
    expect(JSON.stringify(out.output)).toContain('42');
  });

  it('routes screenshot to the browser worker and serves the PNG as an artifact', async () => {
    const html = '<html><body style="margin:0;background:#08f"><h1>Fleet</h1></body></html>';
    const { stdout } = await run(
      process.execPath,
      [
        CLI,
        'submit',
        'screenshot',
        JSON.stringify({ html, options: { viewport: { width: 320, height: 200 } } }),
      ],
      { env },
    );
    const out = JSON.parse(stdout) as {
      state: string;
      id: string;
      artifacts: { name: string; url: string; contentType: string }[];
    };
    expect(out.state).toBe('succeeded');
    const shot = out.artifacts.find((a) => a.contentType === 'image/png');
    expect(shot).toBeDefined();
    // Printed absolute, so it can be fetched as it stands.
    expect(shot!.url).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${env.FLEET_PORT}/api/tasks/`));
    const res = await fetch(shot!.url);
    const bytes = Buffer.from(await res.arrayBuffer());
    expect(res.headers.get('content-type')).toBe('image/png');
    expect(bytes.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
    expect(bytes.readUInt32BE(16)).toBe(320);
  });

  it('fleet status prints the Worker Status Board', async () => {
    const { stdout } = await run(process.execPath, [CLI, 'status'], { env });
    expect(stdout).toMatch(/Worker\s+│\s+Status\s+│\s+Load\s+│\s+Tasks/);
    expect(stdout).toMatch(/echo.*Online.*\d+\/8/);
    expect(stdout).toMatch(/python-sandbox.*Online.*\d+\/5/);
    expect(stdout).toMatch(/browser-worker.*Online.*\d+\/4/);
    expect(stdout).toMatch(/Queue: 0 waiting/);
  });

  it('errors are one line with a non-zero exit code', async () => {
    await expect(
      run(process.execPath, [CLI, 'submit', 'no-such-thing', '{}'], { env }),
    ).rejects.toMatchObject({
      code: 4,
      stderr: expect.stringMatching(
        /^fleet: unknown_capability: no worker type offers "no-such-thing"\nhint: the fleet offers .*\bscreenshot\b.*\n$/,
      ),
    });
    await expect(
      run(process.execPath, [CLI, 'submit', 'pyhton-execution', '{}'], { env }),
    ).rejects.toMatchObject({
      code: 4,
      // The manager's message names the likely fix; the CLI adds no second hint.
      stderr: expect.stringMatching(
        /^fleet: unknown_capability: no worker type offers "pyhton-execution" \(did you mean "python-execution"\?\)\n$/,
      ),
    });
    await expect(run(process.execPath, [CLI, 'submit', 'echo', '{oops'], { env })).rejects.toMatchObject({
      stderr: expect.stringMatching(/invalid_task: payload is not JSON/),
    });
  });
});
