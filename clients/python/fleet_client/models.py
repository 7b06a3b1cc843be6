"""What the manager answers, as typed objects. ``raw`` keeps the whole JSON for fields added later."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional

from .errors import FleetError

FINAL_STATES = frozenset({"succeeded", "failed", "cancelled", "timed_out"})


@dataclass(frozen=True)
class ArtifactInfo:
    name: str
    content_type: str
    size: int
    #: Path of the artifact on the manager (``/api/tasks/{id}/artifacts/{name}``).
    url: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ArtifactInfo":
        return cls(
            name=str(data["name"]),
            content_type=str(data.get("contentType", "application/octet-stream")),
            size=int(data.get("size", 0)),
            url=str(data.get("url", "")),
        )


@dataclass(frozen=True)
class Task:
    id: str
    capability: str
    state: str
    payload: Any
    priority: int
    attempt: int
    max_attempts: int
    timeout_ms: int
    created_at: int
    updated_at: int
    started_at: Optional[int] = None
    finished_at: Optional[int] = None
    worker_id: Optional[str] = None
    session_id: Optional[str] = None
    output: Any = None
    error: Optional[FleetError] = None
    progress: Optional[Dict[str, Any]] = None
    artifacts: List[ArtifactInfo] = field(default_factory=list)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def done(self) -> bool:
        """True once the task is final (succeeded, failed, cancelled or timed out)."""
        return self.state in FINAL_STATES

    def raise_for_error(self) -> "Task":
        """Raises the task's FleetError if it ended without success; returns the task otherwise."""
        if self.error is not None and self.state != "succeeded":
            raise self.error
        return self

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Task":
        error = data.get("error")
        return cls(
            id=str(data["id"]),
            capability=str(data["capability"]),
            state=str(data["state"]),
            payload=data.get("payload"),
            priority=int(data.get("priority", 0)),
            attempt=int(data.get("attempt", 0)),
            max_attempts=int(data.get("maxAttempts", 1)),
            timeout_ms=int(data.get("timeoutMs", 0)),
            created_at=int(data.get("createdAt", 0)),
            updated_at=int(data.get("updatedAt", 0)),
            started_at=data.get("startedAt"),
            finished_at=data.get("finishedAt"),
            worker_id=data.get("workerId"),
            session_id=data.get("sessionId"),
            output=data.get("output"),
            error=FleetError.from_shape(error) if isinstance(error, Mapping) else None,
            progress=data.get("progress"),
            artifacts=[ArtifactInfo.from_json(a) for a in data.get("artifacts") or []],
            raw=dict(data),
        )


@dataclass(frozen=True)
class Worker:
    worker_id: str
    worker_type: str
    endpoint: str
    status: str
    capabilities: List[str]
    in_flight: int
    max_concurrency: int
    draining: bool
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Worker":
        return cls(
            worker_id=str(data["workerId"]),
            worker_type=str(data["workerType"]),
            endpoint=str(data.get("endpoint", "")),
            status=str(data.get("status", "offline")),
            capabilities=[str(c) for c in data.get("capabilities") or []],
            in_flight=int(data.get("inFlight", 0)),
            max_concurrency=int(data.get("maxConcurrency", 0)),
            draining=bool(data.get("draining", False)),
            raw=dict(data),
        )


@dataclass(frozen=True)
class Status:
    manager_id: str
    workers: List[Worker]
    #: Per worker type: ``{workers, online, inFlight, capacity}``.
    types: Dict[str, Dict[str, int]]
    queue_depth: int
    queue_by_capability: Dict[str, int]
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Status":
        queue = data.get("queue") or {}
        return cls(
            manager_id=str(data.get("managerId", "")),
            workers=[Worker.from_json(w) for w in data.get("workers") or []],
            types={str(k): dict(v) for k, v in (data.get("types") or {}).items()},
            queue_depth=int(queue.get("depth", 0)),
            queue_by_capability={str(k): int(v) for k, v in (queue.get("byCapability") or {}).items()},
            raw=dict(data),
        )


@dataclass(frozen=True)
class Artifact:
    name: str
    content_type: str
    data: bytes
