/**
 * (Below the switches, when the worker may create one, the browsers run in a network namespace that reaches
 * only the task proxies: network-namespace.ts. The switches are the layer that holds without root.)
 *
 * Every way Chromium has of sending a packet that is not an HTTP(S)/WebSocket request through the task's proxy,
 * and what closes it. The proxy is the enforcement point only if nothing goes around it, so each transport here
 * is either switched off in the browser process (a switch the page cannot reach) or forced through the proxy:
 *
 *  - WebRTC (UDP host/srflx candidates, STUN, TURN/UDP): `--force-webrtc-ip-handling-policy=disable_non_proxied_udp`
 *    leaves WebRTC only TURN over TCP, which Chromium sends through the proxy as a CONNECT the policy checks.
 *    (`--webrtc-ip-handling-policy` is a Chrome preference name, not a switch: measured to change nothing.)
 *  - QUIC / HTTP/3 (UDP): `--disable-quic`; a proxied context never uses QUIC to an origin anyway.
 *  - WebTransport (HTTP/3 over UDP): no QUIC, and Chromium refuses it through a proxy; the reporter below lists it.
 *  - DNS (system resolver, DoH, dns-prefetch, WebRTC STUN/TURN host names): Chromium resolves nothing itself
 *    (`--host-resolver-rules=MAP * ~NOTFOUND`): with a proxy it never needs to, and only the proxy resolves,
 *    through the policy. That also leaves DoH with no server address to reach.
 *  - PAC / WPAD: the proxy is given per context, explicitly; `--proxy-*` and `--no-proxy-server` are refused in
 *    `chrome_flags`, and so is every switch that would reopen a transport here (`TRANSPORT_GUARD_FLAGS` and
 *    `TRANSPORT_FORBIDDEN_FLAG_RE` in options.ts).
 *  - Background traffic (component updates, safe browsing, variations, domain reliability, hyperlink pings,
 *    media router / DIAL over SSDP, mDNS): the background-networking switches, plus what Playwright disables.
 *
 * The reporter is for the task's `blocked` list only, never the guard: the page shares a process with it.
 * It lists each STUN/TURN server a page hands to RTCPeerConnection and each WebTransport it opens, and removes
 * the ICE servers (the switch above already keeps them from being reached).
 */
import { randomBytes } from 'node:crypto';
import type { BrowserContext } from 'playwright-core';
import type { BlockedRequest } from './policy-proxy.js';
import { truncate } from './url-policy.js';

const MAX_REPORTS = 50;

/**
 * Runs in every frame before the page's scripts. Reports go out as console messages carrying the context's
 * token through the `console.debug` captured here (a page that replaces console.debug later changes nothing);
 * a console message costs no extra round trip per context, unlike a binding.
 */
function reporterScript(token: string): string {
  return `(() => {
  const log = console.debug.bind(console);
  const send = (kind, url) => { try { log(${JSON.stringify(token)} + ' ' + kind + ' ' + String(url)); } catch {} };
  const strip = (config) => {
    if (!config || !config.iceServers) return config;
    for (const server of [].concat(config.iceServers)) {
      for (const u of [].concat(server && server.urls !== undefined ? server.urls : server && server.url)) if (u !== undefined) send('webrtc', u);
    }
    return Object.assign({}, config, { iceServers: [] });
  };
  for (const name of ['RTCPeerConnection', 'webkitRTCPeerConnection']) {
    const Original = globalThis[name];
    if (typeof Original !== 'function') continue;
    const Wrapped = function RTCPeerConnection(config, ...rest) {
      if (!new.target) throw new TypeError("Failed to construct 'RTCPeerConnection': Please use the 'new' operator");
      return Reflect.construct(Original, [strip(config), ...rest], new.target === Wrapped ? Original : new.target);
    };
    Wrapped.prototype = Original.prototype;
    Object.setPrototypeOf(Wrapped, Original);
    try { Object.defineProperty(Original.prototype, 'constructor', { value: Wrapped, writable: true, configurable: true }); } catch {}
    const set = Original.prototype.setConfiguration;
    if (typeof set === 'function') {
      Original.prototype.setConfiguration = function (config) { return set.call(this, strip(config)); };
    }
    globalThis[name] = Wrapped;
  }
  if (typeof globalThis.WebTransport === 'function') {
    const Original = globalThis.WebTransport;
    const Wrapped = function WebTransport(url, ...rest) {
      send('webtransport', url);
      return Reflect.construct(Original, [url, ...rest], new.target ?? Original);
    };
    Wrapped.prototype = Original.prototype;
    try { Object.defineProperty(Original.prototype, 'constructor', { value: Wrapped, writable: true, configurable: true }); } catch {}
    globalThis.WebTransport = Wrapped;
  }
})();`;
}

/** Installs the reporter in a context; its reports arrive as console messages that `readReport` recognises. */
export async function installTransportReporter(context: BrowserContext): Promise<TransportReporter> {
  const token = `__fleet_transport_${randomBytes(8).toString('hex')}`;
  await context.addInitScript({ content: reporterScript(token) });
  return new TransportReporter(token);
}

export class TransportReporter {
  private count = 0;
  constructor(private readonly token: string) {}

  /** True when the console message was a report (then it was added to `blocked`, and is not page output). */
  read(text: string, blocked: BlockedRequest[]): boolean {
    if (!text.startsWith(`${this.token} `)) return false;
    const [kind, ...rest] = text.slice(this.token.length + 1).split(' ');
    const url = rest.join(' ');
    if (this.count++ >= MAX_REPORTS) return true;
    const reason = kind === 'webtransport' ? 'webtransport' : 'webrtc';
    blocked.push({
      url: truncate(url),
      reason,
      message:
        reason === 'webrtc'
          ? 'WebRTC may not reach ICE servers around the proxy'
          : 'WebTransport (HTTP/3 over UDP) cannot go through the proxy',
    });
    return true;
  }
}
