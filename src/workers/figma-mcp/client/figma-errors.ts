/**
 * Figma answers errors in two body shapes, depending on the endpoint family: `{ status, err }` (files,
 * images) and `{ error: true, status, message }` (newer endpoints: components, styles, variables). Both
 * become one typed FleetError, and the token is scrubbed from any text that came back.
 */
import { FleetError } from '../../../protocol/errors.js';

export function errorMessageFromBody(body: unknown): string | undefined {
  if (!body || typeof body !== 'object') return undefined;
  const b = body as Record<string, unknown>;
  if (typeof b.err === 'string') return b.err;
  if (typeof b.message === 'string') return b.message;
  return undefined;
}

export function redact(text: string, secret: string | undefined): string {
  if (!secret || secret.length < 4) return text;
  return text.split(secret).join('[redacted]');
}

export interface HttpFailure {
  status: number;
  body: unknown;
  endpoint: string;
  token: string | undefined;
  /** How the token was sent, for a hint when Figma refuses it. */
  auth?: 'personal' | 'oauth';
}

export function fleetErrorFromResponse(f: HttpFailure): FleetError {
  const raw = errorMessageFromBody(f.body) ?? `HTTP ${f.status}`;
  const message = redact(raw, f.token).slice(0, 500);
  const details = { status: f.status, endpoint: f.endpoint, figmaMessage: message };
  if (f.status === 401 || (f.status === 403 && /token/i.test(message))) {
    // The usual cause besides a revoked token: the wrong kind of token for the header it went in.
    const hint =
      f.auth === 'oauth'
        ? ' (sent as an OAuth bearer token; a personal access token needs figma_config.auth: personal)'
        : f.auth === 'personal'
          ? ' (sent as a personal access token in X-Figma-Token; an OAuth token needs figma_config.auth: oauth)'
          : '';
    return new FleetError('figma_auth', `Figma refused the token on ${f.endpoint}: ${message}${hint}`, {
      details: { ...details, ...(f.auth ? { auth: f.auth } : {}) },
    });
  }
  if (f.status === 403)
    return new FleetError('figma_forbidden', `Figma refused access on ${f.endpoint}: ${message}`, {
      details,
    });
  if (f.status === 404)
    return new FleetError('figma_not_found', `Figma found nothing on ${f.endpoint}: ${message}`, { details });
  if (f.status >= 500)
    return new FleetError('figma_upstream', `Figma failed on ${f.endpoint} (HTTP ${f.status}): ${message}`, {
      details,
    });
  return new FleetError(
    'figma_bad_request',
    `Figma rejected the request on ${f.endpoint} (HTTP ${f.status}): ${message}`,
    { details },
  );
}
