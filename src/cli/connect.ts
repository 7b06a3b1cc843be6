/**
 * Where client commands find the manager: `--url`, then FLEET_URL, then the manager section of the same
 * config `fleet up` reads (`-c`, FLEET_CONFIG, ./fleet.yaml, with FLEET_PORT/FLEET_HOST over it). The
 * source travels with the URL so "cannot reach" can say which one was used.
 */
import { configFileFor, loadConfig } from '../config/load.js';
import { FleetClient } from '../client/fleet-client.js';
import { FleetError } from '../protocol/errors.js';

export interface ClientOptions {
  url?: string;
  token?: string;
  config?: string;
}

export interface ResolvedManager {
  url: string;
  token?: string;
  /** How the URL was found, e.g. "--url", "FLEET_URL", "fleet.yaml (manager.port)", "the default". */
  source: string;
}

/** A manager listening on every address is reached on loopback from this machine. */
function dialHost(host: string): string {
  if (host === '0.0.0.0' || host === '::' || host === '') return '127.0.0.1';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

export function resolveManager(
  opts: ClientOptions,
  env: Record<string, string | undefined> = process.env,
): ResolvedManager {
  // The config is read even with --url: its token is the manager's, and a typo in it is reported either way.
  const file = configFileFor(opts.config, env);
  const cfg = loadConfig({ ...(file ? { file } : {}), env });
  const token = opts.token ?? cfg.manager.token;
  const withToken = token ? { token } : {};
  if (opts.url) return { url: opts.url, source: '--url', ...withToken };
  if (env.FLEET_URL) return { url: env.FLEET_URL, source: 'FLEET_URL', ...withToken };
  const from = [
    ...(file ? [`${file} (manager.host/port)`] : []),
    ...(env.FLEET_PORT || env.FLEET_HOST ? ['FLEET_PORT/FLEET_HOST'] : []),
  ];
  return {
    url: `http://${dialHost(cfg.manager.host)}:${cfg.manager.port}`,
    source: from.length ? from.join(' and ') : 'the default (no --url, FLEET_URL or fleet.yaml here)',
    ...withToken,
  };
}

export function connect(opts: ClientOptions): { client: FleetClient; manager: ResolvedManager } {
  const manager = resolveManager(opts);
  const client = new FleetClient({ url: manager.url, ...(manager.token ? { token: manager.token } : {}) });
  return { client, manager };
}

/** Adds where the URL came from to "cannot reach the manager". */
export function withSource(err: unknown, manager: ResolvedManager | undefined): unknown {
  if (!manager || !(err instanceof FleetError) || err.code !== 'manager_unreachable') return err;
  return new FleetError('manager_unreachable', `${err.message}; the URL came from ${manager.source}`);
}
