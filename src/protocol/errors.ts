/**
 * Every error Fleet puts on the wire, in one table. Codes are stable strings: clients match on them,
 * so a code is never renamed, only added. `docs/errors.md` documents each one (a test checks that).
 *
 * `retryable` is the default verdict for the code; a worker may override it per error (for example an
 * application error that the handler knows to be transient).
 */
export const ERROR_CODES = {
  // Frames and the connection
  bad_frame: { retryable: false, http: 400, summary: 'A frame was not valid JSON.' },
  frame_too_large: { retryable: false, http: 413, summary: 'A frame was larger than the configured limit.' },
  invalid_message: { retryable: false, http: 400, summary: 'A message did not match its schema.' },
  unknown_message: { retryable: false, http: 400, summary: 'A message had a type this side does not know.' },
  protocol_mismatch: { retryable: false, http: 400, summary: 'The peers speak different protocol versions.' },
  unauthorized: { retryable: false, http: 401, summary: 'A token was required and missing or wrong.' },
  duplicate_worker: {
    retryable: false,
    http: 409,
    summary: 'A second connection claimed the id of a worker that is already connected; it was refused.',
  },
  // Tasks, on the manager
  invalid_task: { retryable: false, http: 400, summary: 'A submitted task did not match the task schema.' },
  unknown_capability: { retryable: false, http: 400, summary: 'No worker type offers the capability.' },
  capability_refused: {
    retryable: false,
    http: 400,
    summary:
      'A worker described a capability with a schema the manager cannot accept (too large, unsafe or not compiling); the worker is not routed that capability.',
  },
  queue_full: { retryable: true, http: 429, summary: 'The queue is at its bound; submit again later.' },
  too_many_requests: {
    retryable: true,
    http: 429,
    summary: 'A client channel connection has too many requests in flight; wait for answers first.',
  },
  not_found: { retryable: false, http: 404, summary: 'No task, worker or artifact with that id.' },
  conflict: { retryable: false, http: 409, summary: 'The action does not fit the current state.' },
  no_worker: { retryable: true, http: 503, summary: 'No worker with the capability is online.' },
  worker_lost: { retryable: true, http: 503, summary: 'The worker running the task died or was cut off.' },
  stale_lease: {
    retryable: false,
    http: 409,
    summary: 'A result came from a lease that is no longer current.',
  },
  cancelled: { retryable: false, http: 409, summary: 'The task was cancelled.' },
  timeout: { retryable: true, http: 504, summary: 'The task ran past its deadline and was killed.' },
  poison_task: {
    retryable: false,
    http: 500,
    summary: 'The task was running on two workers that died or hung under it; it is not retried.',
  },
  attempts_exhausted: { retryable: false, http: 500, summary: 'Every allowed attempt failed.' },
  config_invalid: { retryable: false, http: 500, summary: 'The configuration failed validation.' },
  manager_unreachable: {
    retryable: true,
    http: 503,
    summary: 'The client could not reach the Fleet manager.',
  },
  internal: { retryable: true, http: 500, summary: 'An unexpected error inside Fleet.' },
  store_corrupt: {
    retryable: false,
    http: 500,
    summary: 'A record read back from the shared store (Redis) failed validation.',
  },
  shutting_down: {
    retryable: true,
    http: 503,
    summary: 'The manager is stopping: it takes no new task and releases waiters and event streams.',
  },
  // Tasks, on a worker
  busy: { retryable: true, http: 503, summary: 'The worker has no free slot.' },
  draining: { retryable: true, http: 503, summary: 'The worker is draining and takes no new task.' },
  invalid_payload: {
    retryable: false,
    http: 400,
    summary: "A task's payload did not match its handler's schema.",
  },
  payload_too_large: { retryable: false, http: 413, summary: 'A payload or output was over its size cap.' },
  handler_error: { retryable: false, http: 500, summary: 'The handler failed (an application error).' },
  // python-sandbox
  sandbox_unavailable: {
    retryable: false,
    http: 503,
    summary: 'No isolation is available and insecure mode is off.',
  },
  session_not_found: { retryable: false, http: 404, summary: 'No Python session with that id.' },
  session_expired: { retryable: false, http: 410, summary: 'The Python session expired after its idle TTL.' },
  session_busy: { retryable: true, http: 409, summary: 'The Python session is running another task.' },
  session_lost: {
    retryable: false,
    http: 410,
    summary: "The worker holding the task's session is gone; the session's state went with it.",
  },
  oom_killed: {
    retryable: false,
    http: 500,
    summary: 'The code used more memory than its limit and was killed.',
  },
  process_limit: { retryable: false, http: 500, summary: 'The code hit the process limit.' },
  python_error: { retryable: false, http: 500, summary: 'The Python code raised an exception.' },
  syntax_error: { retryable: false, http: 400, summary: 'The Python code does not parse.' },
  path_outside_workspace: { retryable: false, http: 403, summary: 'A path left the workspace.' },
  file_not_found: { retryable: false, http: 404, summary: 'No such file in the workspace.' },
  file_too_large: { retryable: false, http: 413, summary: 'A file was over its size cap.' },
  workspace_full: { retryable: false, http: 507, summary: 'The workspace is over its size limit.' },
  package_install_failed: { retryable: false, http: 500, summary: 'pip could not install the package.' },
  package_build_refused: {
    retryable: false,
    http: 422,
    summary: 'Only a source distribution was found; building one is off (allow_sdist).',
  },
  // browser-worker
  url_blocked: { retryable: false, http: 403, summary: 'The URL policy refused a URL or request.' },
  navigation_failed: { retryable: false, http: 502, summary: 'The page could not be loaded.' },
  selector_not_found: { retryable: false, http: 404, summary: 'A selector matched nothing in time.' },
  browser_crashed: {
    retryable: true,
    http: 503,
    summary: "The browser died or was restarted under the task (not by the task's own page).",
  },
  page_crashed: {
    retryable: false,
    http: 500,
    summary: "The task's own page crashed (renderer out of memory or killed); retried only on opt-in.",
  },
  page_unresponsive: {
    retryable: false,
    http: 500,
    summary: "The task's own page stopped answering (a busy main thread); retried only on opt-in.",
  },
  script_error: { retryable: false, http: 500, summary: 'A script run in the page threw.' },
  step_failed: { retryable: false, http: 500, summary: 'An automation step failed.' },
  // figma-mcp
  figma_auth: { retryable: false, http: 401, summary: 'Figma refused the token.' },
  figma_forbidden: { retryable: false, http: 403, summary: 'Figma refused access (plan or permission).' },
  figma_not_found: { retryable: false, http: 404, summary: 'Figma has no such file or node.' },
  figma_bad_request: {
    retryable: false,
    http: 400,
    summary: 'Figma rejected the request (for example too large).',
  },
  figma_rate_limited: { retryable: true, http: 429, summary: "Figma's rate limit was hit; see retryAfter." },
  figma_upstream: { retryable: true, http: 502, summary: 'Figma failed (5xx or network).' },
  figma_not_configured: { retryable: false, http: 503, summary: 'No Figma token is configured.' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERROR_CODES, value);
}

export interface FleetErrorShape {
  code: string;
  message: string;
  retryable: boolean;
  details?: Record<string, unknown>;
}

export class FleetError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { retryable?: boolean; details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'FleetError';
    this.code = code;
    this.retryable = options.retryable ?? ERROR_CODES[code].retryable;
    this.details = options.details;
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code].http;
  }

  toJSON(): FleetErrorShape {
    return {
      code: this.code,
      message: this.message,
      retryable: this.retryable,
      ...(this.details ? { details: this.details } : {}),
    };
  }

  static from(shape: FleetErrorShape): FleetError {
    const code = isErrorCode(shape.code) ? shape.code : 'internal';
    return new FleetError(code, shape.message, { retryable: shape.retryable, details: shape.details });
  }
}

/** Turns anything thrown into a FleetError; unknown throws become `fallback` (never leak a stack). */
export function toFleetError(err: unknown, fallback: ErrorCode = 'internal'): FleetError {
  if (err instanceof FleetError) return err;
  if (err instanceof Error) {
    if (err.name === 'AbortError') return new FleetError('cancelled', err.message || 'aborted');
    return new FleetError(fallback, err.message);
  }
  return new FleetError(fallback, String(err));
}
