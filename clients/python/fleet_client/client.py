"""FleetClient: the manager's HTTP API and event stream from Python, standard library only."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union
from urllib.parse import quote, urlencode

from .errors import FleetError
from .models import Artifact, Status, Task, Worker
from .websocket import ConnectionClosed, HandshakeRefused, WebSocketClient

#: Longest a single long-poll is held, well under the idle timeouts of common proxies.
WAIT_SLICE_S = 25.0


def _error_from_body(status: int, body: bytes) -> FleetError:
    try:
        shape = json.loads(body.decode("utf-8")).get("error")
    except (ValueError, AttributeError, UnicodeDecodeError):
        shape = None
    if isinstance(shape, Mapping):
        return FleetError.from_shape(shape, status)
    return FleetError("internal", f"manager answered HTTP {status}", status=status)


class EventStream:
    """The manager's live events (``GET /api/events``), one dict per event; use as an iterator.

    The first event is ``{"type": "hello", "managerId": ...}``; then ``task`` (``kind`` and ``task``),
    ``worker`` and ``progress`` events. A manager that shuts down sends a typed error: it is raised as a
    FleetError (``shutting_down``). Close the stream with ``close()`` or a ``with`` block.
    """

    def __init__(self, ws: WebSocketClient) -> None:
        self._ws = ws

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return self

    def __next__(self) -> Dict[str, Any]:
        return self.next(None)

    def next(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """The next event; raises TimeoutError (socket.timeout) when none comes within ``timeout`` s."""
        self._ws.settimeout(timeout)
        while True:
            try:
                data = self._ws.recv()
            except ConnectionClosed as closed:
                if closed.code in (1000, 1001, 1005):
                    raise StopIteration from None
                raise FleetError(
                    "manager_unreachable",
                    f"event stream closed: {closed.code} {closed.reason}".strip(),
                    retryable=True,
                ) from None
            try:
                event = json.loads(data.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                continue  # the manager sends only JSON; a broken frame is not worth ending the stream over
            if not isinstance(event, dict):
                continue
            if event.get("type") == "error" and isinstance(event.get("error"), Mapping):
                self.close()
                raise FleetError.from_shape(event["error"])
            return event

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FleetClient:
    """A Fleet manager over HTTP. Every failure is a FleetError with the manager's code.

    >>> fleet = FleetClient("http://127.0.0.1:3000", token=os.environ.get("FLEET_TOKEN"))
    >>> task = fleet.execute("python-execution", {"code": "print(6 * 7)"})
    >>> task.state, task.output
    """

    def __init__(self, url: str, token: Optional[str] = None, timeout: float = 30.0) -> None:
        self.base = url.rstrip("/")
        self.token = token or None
        self.timeout = timeout

    # --- tasks ---

    def submit(
        self,
        capability: str,
        payload: Any = None,
        *,
        id: Optional[str] = None,
        priority: Optional[int] = None,
        timeout_ms: Optional[int] = None,
        max_attempts: Optional[int] = None,
        idempotency_key: Optional[str] = None,
        session_id: Optional[str] = None,
    ) -> Task:
        """Queues a task and returns it (``queued``, or the existing task an idempotency key matched)."""
        body = self._submission(
            capability, payload, id, priority, timeout_ms, max_attempts, idempotency_key, session_id
        )
        return Task.from_json(self._json("POST", "/api/tasks", body)["task"])

    def execute(
        self,
        capability: str,
        payload: Any = None,
        *,
        wait_s: float = 300.0,
        id: Optional[str] = None,
        priority: Optional[int] = None,
        timeout_ms: Optional[int] = None,
        max_attempts: Optional[int] = None,
        idempotency_key: Optional[str] = None,
        session_id: Optional[str] = None,
    ) -> Task:
        """Submits and waits up to ``wait_s`` for the final state (then returns the task as it is)."""
        deadline = time.monotonic() + wait_s
        body = self._submission(
            capability, payload, id, priority, timeout_ms, max_attempts, idempotency_key, session_id
        )
        slice_s = min(wait_s, WAIT_SLICE_S)
        query = urlencode({"wait": "true", "timeoutMs": int(slice_s * 1000)})
        task = Task.from_json(self._json("POST", f"/api/tasks?{query}", body, timeout=slice_s + 10)["task"])
        if task.done:
            return task
        return self.wait(task.id, max(0.0, deadline - time.monotonic()))

    def get(self, task_id: str) -> Task:
        return Task.from_json(self._json("GET", f"/api/tasks/{quote(task_id, safe='')}")["task"])

    def wait(self, task_id: str, timeout_s: float = 300.0) -> Task:
        """Long-polls until the task is final, or ``timeout_s`` passes (then its current state)."""
        deadline = time.monotonic() + timeout_s
        while True:
            left = max(0.0, deadline - time.monotonic())
            slice_s = min(left, WAIT_SLICE_S)
            path = f"/api/tasks/{quote(task_id, safe='')}/wait?timeoutMs={int(slice_s * 1000)}"
            task = Task.from_json(self._json("GET", path, timeout=slice_s + 10)["task"])
            if task.done or left <= slice_s:
                return task

    def cancel(self, task_id: str) -> Task:
        return Task.from_json(self._json("POST", f"/api/tasks/{quote(task_id, safe='')}/cancel")["task"])

    def retry(self, task_id: str) -> Task:
        return Task.from_json(self._json("POST", f"/api/tasks/{quote(task_id, safe='')}/retry")["task"])

    def list(
        self,
        *,
        state: Union[str, Sequence[str], None] = None,
        capability: Optional[str] = None,
        worker_id: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> List[Task]:
        """Recent tasks, newest first; ``state`` is one state or several."""
        query: Dict[str, str] = {}
        if state is not None:
            query["state"] = state if isinstance(state, str) else ",".join(state)
        if capability is not None:
            query["capability"] = capability
        if worker_id is not None:
            query["workerId"] = worker_id
        if limit is not None:
            query["limit"] = str(limit)
        path = "/api/tasks" + (f"?{urlencode(query)}" if query else "")
        return [Task.from_json(t) for t in self._json("GET", path)["tasks"]]

    # --- artifacts ---

    def artifact(self, task_id: str, name: str) -> Artifact:
        """An artifact's bytes, in memory."""
        with self._open("GET", self._artifact_path(task_id, name)) as res:
            return Artifact(name, res.headers.get("content-type", "application/octet-stream"), res.read())

    def save_artifact(self, task_id: str, name: str, path: Union[str, "os.PathLike[str]"]) -> Path:
        """Streams an artifact to ``path`` (into it, under the artifact's name, when it is a directory)."""
        target = Path(path)
        if target.is_dir():
            # The name comes from the worker: only its last component, never a way out of the directory.
            safe = Path(name).name
            if safe in ("", ".", ".."):
                raise FleetError("invalid_task", f"artifact name {name!r} is not a file name")
            target = target / safe
        partial = target.with_name(target.name + ".part")
        with self._open("GET", self._artifact_path(task_id, name)) as res, open(partial, "wb") as out:
            while True:
                chunk = res.read(1024 * 1024)
                if not chunk:
                    break
                out.write(chunk)
        os.replace(partial, target)
        return target

    def save_artifacts(self, task: Task, directory: Union[str, "os.PathLike[str]"]) -> List[Path]:
        """Saves every artifact of ``task`` into ``directory`` (created if missing)."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        return [self.save_artifact(task.id, a.name, directory) for a in task.artifacts]

    # --- workers and status ---

    def workers(self) -> List[Worker]:
        return [Worker.from_json(w) for w in self._json("GET", "/api/workers")["workers"]]

    def status(self) -> Status:
        return Status.from_json(self._json("GET", "/api/status"))

    def health(self) -> Dict[str, Any]:
        return self._json("GET", "/health")

    # --- events ---

    def events(
        self,
        *,
        task_id: Optional[str] = None,
        types: Optional[Sequence[str]] = None,
        timeout: float = 10.0,
    ) -> EventStream:
        """Opens the live event stream (``types`` e.g. ``["task", "progress"]``; default task, worker, progress)."""
        query: Dict[str, str] = {}
        if task_id:
            query["taskId"] = task_id
        if types:
            query["types"] = ",".join(types)
        ws_base = "ws" + self.base[len("http") :] if self.base.startswith("http") else self.base
        url = f"{ws_base}/api/events" + (f"?{urlencode(query)}" if query else "")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            ws = WebSocketClient(url, headers=headers, timeout=timeout)
        except HandshakeRefused as refused:
            raise _error_from_body(refused.status, refused.body) from None
        except ConnectionClosed as closed:
            raise FleetError("manager_unreachable", f"event stream: {closed}", retryable=True) from None
        except OSError as err:
            raise FleetError(
                "manager_unreachable", f"cannot reach the Fleet manager at {self.base}: {err}", retryable=True
            ) from None
        return EventStream(ws)

    # --- plumbing ---

    @staticmethod
    def _submission(
        capability: str,
        payload: Any,
        id: Optional[str],
        priority: Optional[int],
        timeout_ms: Optional[int],
        max_attempts: Optional[int],
        idempotency_key: Optional[str],
        session_id: Optional[str],
    ) -> Dict[str, Any]:
        body: Dict[str, Any] = {"capability": capability, "payload": {} if payload is None else payload}
        for key, value in (
            ("id", id),
            ("priority", priority),
            ("timeoutMs", timeout_ms),
            ("maxAttempts", max_attempts),
            ("idempotencyKey", idempotency_key),
            ("sessionId", session_id),
        ):
            if value is not None:
                body[key] = value
        return body

    @staticmethod
    def _artifact_path(task_id: str, name: str) -> str:
        return f"/api/tasks/{quote(task_id, safe='')}/artifacts/{quote(name, safe='')}"

    def _open(self, method: str, path: str, body: Any = None, timeout: Optional[float] = None) -> Any:
        headers = {"accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["content-type"] = "application/json"
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers)
        try:
            return urllib.request.urlopen(req, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as err:
            with err:
                raise _error_from_body(err.code, err.read()) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise FleetError(
                "manager_unreachable", f"cannot reach the Fleet manager at {self.base}: {reason}", retryable=True
            ) from None

    def _json(self, method: str, path: str, body: Any = None, timeout: Optional[float] = None) -> Dict[str, Any]:
        with self._open(method, path, body, timeout) as res:
            try:
                result = json.loads(res.read().decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as err:
                raise FleetError("internal", f"the manager's answer is not JSON: {err}") from None
        if not isinstance(result, dict):
            raise FleetError("internal", "the manager's answer is not a JSON object")
        return result
