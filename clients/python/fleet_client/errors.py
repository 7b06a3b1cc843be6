"""Fleet's typed errors: every failure carries the manager's stable ``code`` (see docs/errors.md)."""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional


class FleetError(Exception):
    """An error from Fleet (or from reaching it), with the code to branch on.

    ``code`` is one of the codes in docs/errors.md (``invalid_task``, ``invalid_payload``, ``not_found``,
    ``unauthorized``, ``manager_unreachable``, ...). ``path`` names the field of a refused submission
    (the JSON path), when the manager said which one.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        details: Optional[Mapping[str, Any]] = None,
        status: Optional[int] = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.retryable = retryable
        self.details: Dict[str, Any] = dict(details or {})
        #: The HTTP status the manager answered with, when the error came over HTTP.
        self.status = status

    @property
    def path(self) -> Optional[str]:
        """The JSON path of the refused field (``details.path``, or ``details.field``), if any."""
        for key in ("path", "field"):
            value = self.details.get(key)
            if isinstance(value, str):
                return value
            if isinstance(value, list):
                return ".".join(str(p) for p in value)
        return None

    @classmethod
    def from_shape(cls, shape: Mapping[str, Any], status: Optional[int] = None) -> "FleetError":
        """Builds the error from the wire shape ``{code, message, retryable, details?}``."""
        details = shape.get("details")
        return cls(
            str(shape.get("code", "internal")),
            str(shape.get("message", "")),
            retryable=bool(shape.get("retryable", False)),
            details=details if isinstance(details, Mapping) else None,
            status=status,
        )

    def to_shape(self) -> Dict[str, Any]:
        shape: Dict[str, Any] = {"code": self.code, "message": self.message, "retryable": self.retryable}
        if self.details:
            shape["details"] = dict(self.details)
        return shape
