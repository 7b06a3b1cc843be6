/**
 * Holds the frames a WebSocket sends during one event-loop turn in its TCP socket and writes them with one
 * syscall when the loop reaches its check phase. Under load a manager hands out many tasks per turn (and a
 * worker or a client channel answers many): one writev, and one wake-up of the peer, per frame was the
 * largest single cost of a no-op task (docs/performance.md).
 *
 * The first frame of a turn goes out at once; only the frames after it wait. A lone frame — every frame of
 * a sequential round trip — then leaves before the rest of its turn's work (the state change and events
 * after a dispatch, the metrics after a result) instead of after it, which is the turn's share of the round
 * trip (docs/performance.md, "Fourth pass"). A burst still costs two writes, not one per frame.
 */
import type { WebSocket } from 'ws';

interface Corkable {
  cork(): void;
  uncork(): void;
}

/**
 * Per socket, what it did in this turn: `wrote` a frame at once, or `corked` after that to hold the rest. One
 * check-phase callback per socket and turn forgets it (and uncorks).
 */
const thisTurn = new WeakMap<Corkable, 'wrote' | 'corked'>();

export function batchWritesThisTurn(ws: WebSocket): void {
  // ws keeps the net.Socket private; without it (another WebSocket implementation) frames go out one by one.
  const raw = (ws as unknown as { _socket?: Partial<Corkable> })._socket;
  if (typeof raw?.cork !== 'function' || typeof raw.uncork !== 'function') return;
  const socket = raw as Corkable;
  const state = thisTurn.get(socket);
  if (state === 'corked') return;
  if (state === 'wrote') {
    thisTurn.set(socket, 'corked');
    socket.cork();
    return;
  }
  thisTurn.set(socket, 'wrote');
  setImmediate(() => {
    if (thisTurn.get(socket) === 'corked') socket.uncork();
    thisTurn.delete(socket);
  });
}
