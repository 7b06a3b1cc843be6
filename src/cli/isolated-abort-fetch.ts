/**
 * A `fetch` for the MCP SDK's `StreamableHTTPClientTransport` in a long-lived process (`fleet mcp`).
 *
 * The transport hands one AbortSignal, its own, to every request. Node's fetch (undici) adds an abort listener
 * to the signal it is given and lets go of it only when the request is garbage collected, so over a long
 * session that one signal collects thousands of listeners: memory held until a collection, a walk over them on
 * every request, and `MaxListenersExceededWarning` on stderr. Here each request gets its own signal, tied to
 * the transport's by one listener that is removed as soon as the answer is in — kept only for an event stream,
 * which the transport's abort must still be able to stop while it is read.
 */
type Fetch = (url: string | URL, init?: RequestInit) => Promise<Response>;

export function isolatedAbortFetch(base: Fetch = fetch): Fetch {
  return async (url, init) => {
    const outer = init?.signal;
    if (!outer) return base(url, init);
    const inner = new AbortController();
    const forward = () => inner.abort(outer.reason);
    if (outer.aborted) forward();
    else outer.addEventListener('abort', forward, { once: true });
    try {
      const res = await base(url, { ...init, signal: inner.signal });
      if (!res.headers.get('content-type')?.includes('text/event-stream')) {
        outer.removeEventListener('abort', forward);
      }
      return res;
    } catch (err) {
      outer.removeEventListener('abort', forward);
      throw err;
    }
  };
}
