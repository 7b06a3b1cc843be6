/** WebSockets for readers on the API's server: the live event stream and the sockets the dashboard serves. */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { WebSocketServer, type WebSocket } from 'ws';
import type { FleetError } from '../../protocol/errors.js';
import type { ManagerEvent, WorkerManager } from '../manager.js';
import { authorize, type AuthOptions } from './auth.js';
import { publicTask } from './views.js';

/**
 * `GET /api/events` upgraded to a WebSocket: task, worker and progress events as JSON lines.
 * `?taskId=` narrows to one task; `?types=task,worker,progress` picks kinds (`scaling` and `alert` on request:
 * a decision per worker type per second would drown the default stream). A slow client is cut off rather
 * than buffered without bound.
 */
export function attachEventStream(app: FastifyInstance, manager: WorkerManager, options: AuthOptions): void {
  attachReadSocket(app, '/api/events', options, 64 * 1024, (ws, url) =>
    streamEvents(ws, manager, url.searchParams),
  );
}

/**
 * Serves a WebSocket at `path` on the API's server for readers: the token is checked at the upgrade (a refusal
 * is a 401 with the typed error as JSON), and every socket is cut when the server closes.
 */
export function attachReadSocket(
  app: FastifyInstance,
  path: string,
  auth: AuthOptions,
  maxPayload: number,
  onSocket: (ws: WebSocket, url: URL) => void,
): WebSocketServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload });
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname !== path) return;
    try {
      authorize(auth, req, 'read');
    } catch (err) {
      const e = err as FleetError;
      socket.end(
        `HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n${JSON.stringify({ error: e.toJSON() })}`,
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => onSocket(ws, url));
  });
  // preClose, not onClose: the HTTP server's close waits for every socket, upgraded ones included, so
  // cutting them only after it would leave `fleet up` hanging on SIGTERM while anyone watches events.
  app.addHook('preClose', async () => {
    for (const c of wss.clients) c.terminate();
    wss.close();
  });
  return wss;
}

/**
 * A graceful stop releases the socket with the typed error (one `error` frame, then close 1001), so a client
 * learns why and can reconnect elsewhere instead of hanging on a server that is going away.
 */
export function releaseOnShutdown(ws: WebSocket, manager: WorkerManager): void {
  const release = () => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(JSON.stringify({ type: 'error', error: manager.shutdownError().toJSON() }), () =>
      ws.close(1001, 'manager shutting down'),
    );
  };
  const unsubscribe = manager.onShutdown(release);
  ws.once('close', unsubscribe);
}

function streamEvents(ws: WebSocket, manager: WorkerManager, params: URLSearchParams): void {
  const taskId = params.get('taskId') ?? undefined;
  const types = new Set((params.get('types') ?? 'task,worker,progress').split(','));
  // Asked for by type, so the manager builds no worker view for a stream that shows none.
  const wanted = [...types].filter((t) => !taskId || t === 'task' || t === 'progress');
  const unsubscribe = manager.subscribe(
    (event: ManagerEvent) => {
      if (!types.has(event.type)) return;
      if (taskId) {
        const id =
          event.type === 'task'
            ? event.event.task.id
            : event.type === 'progress'
              ? event.progress.taskId
              : undefined;
        if (id !== taskId) return;
      }
      if (ws.bufferedAmount > 8 * 1024 * 1024) {
        ws.close(1013, 'client too slow');
        return;
      }
      const out =
        event.type === 'task'
          ? { type: 'task', kind: event.event.kind, task: publicTask(event.event.task) }
          : event;
      ws.send(JSON.stringify(out));
    },
    { types: wanted as ManagerEvent['type'][] },
  );
  ws.on('close', unsubscribe);
  ws.on('error', () => undefined);
  ws.send(JSON.stringify({ type: 'hello', managerId: manager.id }));
  releaseOnShutdown(ws, manager);
}
