/** A worker endpoint in the one form the directory, the leases and the registry key on. */
import { FleetError } from '../../protocol/errors.js';

export function normalizeEndpoint(endpoint: string): string {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new FleetError('invalid_task', `"${endpoint}" is not a URL (expected ws://host:port/ws)`);
  }
  if (url.protocol === 'http:') url.protocol = 'ws:';
  if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw new FleetError('invalid_task', `worker endpoint must be ws:// or wss://, got ${endpoint}`);
  }
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/ws';
  return url.toString();
}
