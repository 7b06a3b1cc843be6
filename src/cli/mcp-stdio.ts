/**
 * `fleet mcp`: the gateway for MCP clients that launch a command. A transport bridge, not a second server:
 * every JSON-RPC message from stdin goes to the manager's `/mcp` (Streamable HTTP, with the token), every
 * message back goes to stdout, so tools, progress, cancellation and list_changed behave exactly as over HTTP.
 * Logs go to stderr only: stdout is the protocol.
 */
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { isolatedAbortFetch } from './isolated-abort-fetch.js';

export interface StdioBridgeOptions {
  url: URL;
  token?: string;
  stdin?: NodeJS.ReadableStream;
  stdout?: NodeJS.WritableStream;
}

/** Runs until stdin ends or the manager's session is gone; resolves with the error that ended it, if any. */
export async function runStdioBridge(options: StdioBridgeOptions): Promise<{ error?: Error }> {
  const local = new StdioServerTransport(
    options.stdin as NodeJS.ReadStream | undefined,
    options.stdout as NodeJS.WriteStream | undefined,
  );
  const remote = new StreamableHTTPClientTransport(options.url, {
    requestInit: options.token ? { headers: { authorization: `Bearer ${options.token}` } } : {},
    fetch: isolatedAbortFetch(),
  });
  return new Promise((resolve) => {
    let ended = false;
    const end = (error?: Error) => {
      if (ended) return;
      ended = true;
      void remote
        .terminateSession()
        .catch(() => undefined)
        .finally(() => {
          void remote.close().catch(() => undefined);
          void local.close().catch(() => undefined);
          resolve(error ? { error } : {});
        });
    };
    local.onmessage = (message: JSONRPCMessage) => {
      remote.send(message).catch((err: unknown) => {
        const e = err instanceof Error ? err : new Error(String(err));
        process.stderr.write(`fleet mcp: ${e.message}\n`);
        // A request that could not reach the manager still gets its answer, so the client does not hang.
        if ('id' in message && 'method' in message) {
          void local.send({
            jsonrpc: '2.0',
            id: message.id,
            error: { code: -32000, message: `manager_unreachable: ${e.message}` },
          });
        }
      });
    };
    remote.onmessage = (message: JSONRPCMessage) => {
      // The HTTP transport must send the negotiated version on every later request.
      const result = 'result' in message ? (message.result as { protocolVersion?: unknown }) : undefined;
      if (typeof result?.protocolVersion === 'string') remote.setProtocolVersion(result.protocolVersion);
      void local.send(message);
    };
    remote.onerror = (err) => process.stderr.write(`fleet mcp: ${err.message}\n`);
    local.onclose = () => end();
    // The SDK's stdio transport does not watch for the end of stdin: the client going away ends the bridge.
    (options.stdin ?? process.stdin).once('end', () => end());
    local.onerror = (err) => end(err);
    void remote.start().then(
      () => local.start(),
      (err: unknown) => end(err as Error),
    );
  });
}
