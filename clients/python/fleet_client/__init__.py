"""Python client for the Fleet manager (standard library only).

    from fleet_client import FleetClient, FleetError

    fleet = FleetClient("http://127.0.0.1:3000", token="...")
    task = fleet.execute("echo", {"hello": "world"})
"""

from .client import EventStream, FleetClient
from .errors import FleetError
from .models import FINAL_STATES, Artifact, ArtifactInfo, Status, Task, Worker

__all__ = [
    "Artifact",
    "ArtifactInfo",
    "EventStream",
    "FINAL_STATES",
    "FleetClient",
    "FleetError",
    "Status",
    "Task",
    "Worker",
]
__version__ = "0.1.0"
