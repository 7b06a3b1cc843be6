/**
 * The browsers' own network namespace: only a loopback interface, and on it only the listening sockets of the
 * task proxies. Chromium runs with `--no-sandbox`, so its switches (transport-guard.ts) hold only as long as no
 * renderer is compromised; the namespace holds regardless: whatever a process in it sends, to any address, over
 * any protocol, can reach nothing but a proxy, which applies the URL policy from the worker's own namespace.
 *
 * How: a small holder process is started in a new namespace (`unshare --net`), brings its loopback up, and for
 * each proxy creates a listening socket there and passes it to the worker over the IPC channel (a socket belongs
 * to the namespace it was created in, wherever its fd goes). The worker accepts on it; the browsers are
 * launched into the holder's namespace (`nsenter --net=/proc/<holder>/ns/net`). The holder exits with the
 * worker (IPC disconnect, and PR_SET_PDEATHSIG through setpriv when present). Needs root (CAP_SYS_ADMIN) and
 * util-linux's unshare/nsenter; without them the pool runs the browsers in the worker's namespace, with a warning.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Server } from 'node:net';

/** The holder, run as `node -e`: the same code serves the built worker and the tests' TypeScript sources. */
const HOLDER = `
const { execFileSync } = require('node:child_process');
const net = require('node:net');
for (const ip of ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip']) {
  try { execFileSync(ip, ['link', 'set', 'lo', 'up']); break; } catch {}
}
process.on('message', (m) => {
  const s = net.createServer();
  s.on('error', (e) => process.send({ id: m.id, error: String(e && e.message) }));
  s.listen(0, '127.0.0.1', () => process.send({ id: m.id, port: s.address().port }, s, () => s.close()));
});
process.on('disconnect', () => process.exit(0));
process.send({ ready: true });
`;

export interface NamespaceListener {
  server: Server;
  port: number;
}

export class BrowserNetworkNamespace {
  private seq = 0;
  private readonly waiting = new Map<
    number,
    { resolve: (l: NamespaceListener) => void; reject: (e: Error) => void }
  >();

  private constructor(private readonly child: ChildProcess) {
    child.on('message', (msg: { id?: number; port?: number; error?: string }, handle: unknown) => {
      if (msg.id === undefined) return;
      const w = this.waiting.get(msg.id);
      if (!w) return;
      this.waiting.delete(msg.id);
      if (this.waiting.size === 0) this.channel?.unref?.();
      if (msg.error || !handle || msg.port === undefined)
        w.reject(new Error(`no listener in the browsers' namespace: ${msg.error ?? 'no handle'}`));
      else w.resolve({ server: handle as Server, port: msg.port });
    });
    child.once('exit', () => {
      for (const w of this.waiting.values()) w.reject(new Error("the browsers' network namespace is gone"));
      this.waiting.clear();
    });
  }

  /** Starts the holder; undefined (with the reason) when this host cannot give the browsers a namespace. */
  static async start(poolRoot: string): Promise<BrowserNetworkNamespace | { unavailable: string }> {
    if (process.getuid?.() !== 0)
      return { unavailable: 'not root (creating a network namespace needs CAP_SYS_ADMIN)' };
    const unshare = ['/usr/bin/unshare', '/bin/unshare'].find((p) => existsSync(p));
    const nsenter = ['/usr/bin/nsenter', '/bin/nsenter'].find((p) => existsSync(p));
    if (!unshare || !nsenter) return { unavailable: 'util-linux unshare/nsenter not found' };
    const args = ['--net', '--', process.execPath, '-e', HOLDER];
    const setpriv = existsSync('/usr/bin/setpriv');
    // The pool's root in its environment: the leftover sweep and the tests find it like the browsers.
    const opts = {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'] as const,
      env: { ...process.env, FLEET_BROWSER_POOL: poolRoot },
    };
    const child = setpriv
      ? spawn('/usr/bin/setpriv', ['--pdeathsig', 'KILL', '--', unshare, ...args], {
          ...opts,
          stdio: [...opts.stdio],
        })
      : spawn(unshare, args, { ...opts, stdio: [...opts.stdio] });
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const ready = await new Promise<true | string>((resolve) => {
      const timer = setTimeout(() => resolve('timed out'), 10_000);
      child.once('message', () => {
        clearTimeout(timer);
        resolve(true);
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        resolve(`exited with ${code}: ${stderr.trim().slice(0, 300)}`);
      });
      child.once('error', (err) => {
        clearTimeout(timer);
        resolve(err.message);
      });
    });
    if (ready !== true) {
      child.kill('SIGKILL');
      return { unavailable: `the namespace holder did not start (${ready})` };
    }
    // The holder must not keep the worker alive: it ends with the worker, not the other way round.
    child.unref();
    (child.channel as { unref?: () => void } | undefined)?.unref?.();
    (child.stderr as unknown as { unref?: () => void } | null)?.unref?.();
    const ns = new BrowserNetworkNamespace(child);
    ns.nsenter = nsenter;
    return ns;
  }

  nsenter = '/usr/bin/nsenter';

  private get channel(): { ref?: () => void; unref?: () => void } | undefined {
    return this.child.channel as { ref?: () => void; unref?: () => void } | undefined;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The namespace file the browsers are launched into. */
  get path(): string {
    return `/proc/${this.child.pid}/ns/net`;
  }

  /** A listening socket on 127.0.0.1 inside the namespace, accepted on in this process. */
  listen(): Promise<NamespaceListener> {
    const id = ++this.seq;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      // An answer on its way keeps the worker alive; an idle channel does not.
      this.channel?.ref?.();
      if (!this.child.connected || !this.child.send({ id })) {
        this.waiting.delete(id);
        if (this.waiting.size === 0) this.channel?.unref?.();
        reject(new Error("the browsers' network namespace is gone"));
      }
    });
  }

  stop(): void {
    if (this.child.connected) this.child.disconnect();
    this.child.kill('SIGKILL');
  }
}
