/**
 * Transports around the proxy, attacked on real Chromium in a network namespace of the test's own: a veth pair
 * (10.99.0.1, 10.99.0.2) gives Chromium the non-loopback interface every real host has, which is what makes
 * WebRTC gather candidates and send UDP at all. Listeners in the namespace count every TCP connection and UDP
 * datagram (one port, both protocols, on 0.0.0.0, and DNS on 127.0.0.1:53, where the namespace's resolv.conf
 * points). Each case must deliver zero and show in the task's `blocked` when the page tried something.
 *
 * Every case runs twice: with the switches alone (`network_namespace: false`) and with the browsers in their own
 * network namespace as well (the default as root): the switches are shown to hold alone, and nothing breaks with
 * the namespace on top (its own test below checks the browsers see only a loopback interface).
 *
 * A control run of the first case from a Chromium without the worker's switches must deliver datagrams, so a
 * namespace that cannot reproduce the attack fails the test instead of passing it. Needs root (unshare, ip) and
 * `dist/` (npx tsc -p tsconfig.build.json).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hostname } from 'node:os';
import { HEADLESS_SHELL, runTask, startKind } from '../../../fixtures/browser/kind.js';
import { startTestServer } from '../../../fixtures/browser/test-server.js';

interface CaseReport {
  name: string;
  networkNamespace: boolean;
  network: 'namespace' | 'host';
  udp: number;
  tcp: number;
  dns: number;
  blocked?: Array<{ url: string; reason: string }>;
  error?: { code: string; message: string };
}
interface Report {
  port: number;
  control: { udp: number; tcp: number; dns: number };
  cases: CaseReport[];
}

const ICE = (servers: string) => `<script>
  const pc = new RTCPeerConnection({ iceServers: ${servers} });
  pc.createDataChannel('x');
  pc.createOffer().then((o) => pc.setLocalDescription(o));
</script>`;

/** Each case is one page; {{PORT}} is the counting listener (UDP and TCP). */
const CASES = [
  {
    name: 'stun-udp',
    html: ICE(
      "[{ urls: ['stun:127.0.0.1:{{PORT}}', 'stun:10.99.0.1:{{PORT}}', 'stun:10.99.0.2:{{PORT}}'] }]",
    ),
    expect: 'webrtc',
  },
  {
    name: 'turn-udp',
    html: ICE("[{ urls: 'turn:127.0.0.1:{{PORT}}?transport=udp', username: 'u', credential: 'p' }]"),
    expect: 'webrtc',
  },
  // TURN over TCP is the one WebRTC path left: Chromium sends it through the proxy, which refuses the address.
  {
    name: 'turn-tcp',
    html: ICE("[{ urls: 'turn:127.0.0.1:{{PORT}}?transport=tcp', username: 'u', credential: 'p' }]"),
    expect: 'webrtc',
  },
  // Around the reporter: the original constructor through the prototype, and setConfiguration afterwards.
  {
    name: 'rtc-bypass',
    html: `<script>
      const Original = RTCPeerConnection.prototype.constructor;
      const pc = new Original({ iceServers: [] });
      pc.setConfiguration({ iceServers: [{ urls: 'stun:127.0.0.1:{{PORT}}' }] });
      pc.createDataChannel('x');
      pc.createOffer().then((o) => pc.setLocalDescription(o));
      const pc2 = new (Object.getPrototypeOf(RTCPeerConnection))({ iceServers: [{ urls: 'stun:10.99.0.1:{{PORT}}' }] });
      pc2.createDataChannel('y');
      pc2.createOffer().then((o) => pc2.setLocalDescription(o));
    </script>`,
    expect: 'webrtc',
  },
  // A STUN server by name: Chromium would ask the system resolver (a DNS channel out of the page).
  { name: 'stun-name', html: ICE("[{ urls: 'stun:leak.example.com:{{PORT}}' }]"), expect: 'webrtc' },
  {
    name: 'webtransport',
    html: `<script>
      try { new WebTransport('https://127.0.0.1:{{PORT}}/').ready.catch(() => {}); } catch (e) {}
      try { new WebTransport('https://10.99.0.1:{{PORT}}/').ready.catch(() => {}); } catch (e) {}
    </script>`,
    expect: 'webtransport',
  },
  {
    name: 'prefetch',
    html: `<link rel="dns-prefetch" href="//prefetch.example.com"><link rel="preconnect" href="https://preconnect.example.com">
      <link rel="preconnect" href="http://10.99.0.1:{{PORT}}"><link rel="prefetch" href="http://10.99.0.1:{{PORT}}/next">
      <script type="speculationrules">{"prefetch":[{"source":"list","urls":["http://127.0.0.1:{{PORT}}/spec"]}]}</script>`,
    expect: 'address',
  },
  // HTTP/3: https to the UDP port is a CONNECT the policy refuses; QUIC never starts.
  {
    name: 'quic',
    html: `<script>fetch('https://127.0.0.1:{{PORT}}/', { mode: 'no-cors' }).catch(() => {});</script>`,
    expect: 'address',
  },
  // IPv6 forms that embed or route to IPv4 (issue 13, point 2): the proxy refuses each by the IANA tables.
  {
    name: 'ipv6-forms',
    html: [
      '::127.0.0.1',
      '::7f00:1',
      '2002:7f00:1::1',
      '64:ff9b:1::7f00:1',
      '64:ff9b::7f00:1',
      '::ffff:0:7f00:1',
      '2001:0:4136:e378:8000:63bf:80ff:fffe',
      '::ffff:10.99.0.1',
    ]
      .map((a) => `<img src="http://[${a}]:{{PORT}}/x.png">`)
      .join(''),
    expect: 'address',
  },
  // Special-use names (point 3): refused by name, so not even the worker's resolver is asked (dns stays 0).
  {
    name: 'special-names',
    html: [
      'localhost.',
      'a.localhost',
      'x.invalid',
      'x.test',
      'printer.local',
      'metadata.google.internal',
      'intranet',
      '{{HOSTNAME}}',
    ]
      .map((h) => `<img src="http://${h}:{{PORT}}/x.png">`)
      .join(''),
    expect: 'special-name',
  },
] as const;

let report: Report;
const temp = mkdtempSync(join(tmpdir(), 'fleet-netns-test-'));

function runInNamespace(input: unknown): Promise<Report> {
  const child = join(import.meta.dirname, '../../../fixtures/browser/netns-child.mjs');
  const resolv = join(temp, 'resolv.conf');
  writeFileSync(resolv, 'nameserver 127.0.0.1\noptions attempts:1 timeout:1\n');
  const setup = [
    'set -e',
    'ip link set lo up',
    'ip link add fleet0 type veth peer name fleet1',
    'ip addr add 10.99.0.1/24 dev fleet0',
    'ip addr add 10.99.0.2/24 dev fleet1',
    'ip link set fleet0 up',
    'ip link set fleet1 up',
    `mount --bind ${resolv} /etc/resolv.conf`,
    `exec ${process.execPath} ${child}`,
  ].join('\n');
  // --net and --mount: the veth pair, the listeners and the resolv.conf exist only for this child.
  const proc = spawn('unshare', ['--net', '--mount', '--', 'sh', '-c', setup], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
  proc.stderr.on('data', (c: Buffer) => (err += c.toString()));
  proc.stdin.end(JSON.stringify(input));
  return new Promise((resolve, reject) => {
    proc.on('error', reject);
    proc.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line.startsWith('{')) {
        reject(new Error(`namespace child failed (exit ${code}): ${err.slice(-2000)}${out.slice(-500)}`));
        return;
      }
      resolve(JSON.parse(line) as Report);
    });
  });
}

beforeAll(async () => {
  if (process.getuid?.() !== 0) throw new Error('this test creates a network namespace and needs root');
  if (!existsSync(join(import.meta.dirname, '../../../../dist/workers/browser/index.js'))) {
    throw new Error('dist/ is missing: run npx tsc -p tsconfig.build.json first');
  }
  report = await runInNamespace({
    executable: process.env.BROWSER_EXECUTABLE_PATH ?? HEADLESS_SHELL,
    tempDir: temp,
    control: 'stun-udp',
    modes: [false, true],
    caseMs: 2000,
    settleMs: 800,
    cases: CASES.map(({ name, html }) => ({ name, html: html.replaceAll('{{HOSTNAME}}', hostname()) })),
  });
}, 180_000);

afterAll(() => rmSync(temp, { recursive: true, force: true }));

describe('transports around the proxy (own network namespace)', () => {
  it('the control: Chromium without the worker switches does send WebRTC datagrams here', () => {
    expect(report.control.udp).toBeGreaterThan(0);
  });

  for (const ns of [false, true]) {
    for (const c of CASES) {
      it(`${c.name}, ${ns ? "browsers' own network namespace" : 'switches alone'}: zero packets, listed in blocked`, () => {
        const r = report.cases.find((x) => x.name === c.name && x.networkNamespace === ns)!;
        expect(r.network).toBe(ns ? 'namespace' : 'host');
        expect(r.error, JSON.stringify(r.error)).toBeUndefined();
        expect({ udp: r.udp, tcp: r.tcp, dns: r.dns }).toEqual({ udp: 0, tcp: 0, dns: 0 });
        expect(r.blocked?.map((b) => b.reason)).toContain(c.expect);
      });
    }
  }
});

describe("the browsers' network namespace", () => {
  it('holds the browsers where the only interface is loopback, and tasks still work through the proxy', async () => {
    const server = await startTestServer();
    const kind = await startKind([server.port], { pool_size: 1 });
    try {
      expect(kind.pool!.snapshot().network).toBe('namespace');
      const pid = kind.pool!.pids()[0]!;
      expect(readlinkSync(`/proc/${pid}/ns/net`)).not.toBe(readlinkSync('/proc/self/ns/net'));
      // /proc/<pid>/net/dev lists the interfaces of that process's namespace.
      const interfaces = readFileSync(`/proc/${pid}/net/dev`, 'utf8')
        .split('\n')
        .slice(2)
        .map((l) => l.split(':')[0]!.trim())
        .filter(Boolean);
      expect(interfaces).toEqual(['lo']);
      const r = await runTask(kind, 'scraping', { url: `${server.origin}/table.html` });
      expect(r.output).toMatchObject({ status: 200 });
    } finally {
      await kind.stop!();
      await server.close();
    }
  });
});
