"""The Python client against a real manager and a real echo worker, both started here from the built CLI.

Run from the repository (after ``npm run build``):

    /usr/bin/python3 -m unittest discover -s clients/python/tests -v

``FLEETPY_CLI`` (default: dist/cli/main.js of this checkout) and ``FLEETPY_NODE`` (default: ``node``) say what to
start. The tests import ``fleet_client`` as installed, or from clients/python when it is not.
"""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
if importlib.util.find_spec("fleet_client") is None:
    # Not installed: the source next to the tests. (Installed is the path `pip install ./clients/python` gives.)
    sys.path.insert(0, str(HERE.parent))

from fleet_client import FleetClient, FleetError  # noqa: E402

REPO = HERE.parents[2]
CLI = os.environ.get("FLEETPY_CLI", str(REPO / "dist" / "cli" / "main.js"))
NODE = os.environ.get("FLEETPY_NODE", "node")
TOKEN = "py-client-" + uuid.uuid4().hex


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 (the process is still starting)
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Fleet:
    """`fleet worker echo` and `fleet manager` dialling it, as processes, with a token."""

    def __init__(self) -> None:
        if not Path(CLI).exists():
            raise AssertionError(f"{CLI} is missing: run `npm run build` first")
        self.dir = tempfile.TemporaryDirectory(prefix="fleet-py-client-")
        self.procs: list[subprocess.Popen] = []
        self.logs = []
        try:
            self._start()
        except BaseException as err:
            logs = "".join(
                f"--- {log.name}\n{Path(log.name).read_text(errors='replace')}" for log in self.logs
            )
            self.stop()
            raise AssertionError(f"{err}\n{logs}") from err

    def _start(self) -> None:
        # Fleet refuses FLEET_* names it does not know; the caller's own FLEET_* settings are not this fleet's.
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
        env.update(FLEET_TOKEN=TOKEN, FLEET_LOG_LEVEL="warn")
        worker_port = free_port()
        self._spawn(["worker", "echo", "--port", str(worker_port), "--host", "127.0.0.1"], env, "worker")
        wait_until(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{worker_port}/health", timeout=1).status == 200,
            20,
            "the echo worker",
        )
        port = free_port()
        config = Path(self.dir.name) / "fleet.yaml"
        config.write_text(
            json.dumps(
                {
                    "manager": {
                        "port": port,
                        "host": "127.0.0.1",
                        "workers": [f"ws://127.0.0.1:{worker_port}/ws"],
                        "health": {"heartbeat_interval": "200ms", "missed_heartbeats": 5},
                        "shutdown_grace": 1,
                    }
                }
            )
        )
        self._spawn(["manager", "--config", str(config)], env, "manager")
        self.url = f"http://127.0.0.1:{port}"
        probe = FleetClient(self.url, token=TOKEN, timeout=2)
        wait_until(lambda: any(w.status == "online" for w in probe.workers()), 20, "the manager with its worker")

    def _spawn(self, args, env, name) -> None:
        log = open(Path(self.dir.name) / f"{name}.log", "wb")
        self.logs.append(log)
        self.procs.append(subprocess.Popen([NODE, CLI, *args], env=env, stdout=log, stderr=subprocess.STDOUT))

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for log in self.logs:
            log.close()
        self.dir.cleanup()


class ClientTest(unittest.TestCase):
    fleet: Fleet
    client: FleetClient

    @classmethod
    def setUpClass(cls) -> None:
        cls.fleet = Fleet()
        cls.client = FleetClient(cls.fleet.url, token=TOKEN)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.fleet.stop()

    @unittest.skipUnless(os.environ.get("FLEETPY_REQUIRE_INSTALLED"), "only when checking an installed package")
    def test_the_installed_package_is_the_one_tested(self) -> None:
        import fleet_client

        self.assertTrue(Path(fleet_client.__file__).resolve().is_relative_to(Path(sys.prefix).resolve()))
        self.assertFalse(Path(fleet_client.__file__).resolve().is_relative_to(HERE.parent))
        self.assertTrue((Path(fleet_client.__file__).parent / "py.typed").exists())

    def test_execute_waits_for_the_result(self) -> None:
        task = self.client.execute("echo", {"hello": "from python", "n": [1, 2, 3]}, wait_s=20)
        self.assertEqual(task.state, "succeeded")
        self.assertTrue(task.done)
        self.assertEqual(task.output, {"hello": "from python", "n": [1, 2, 3]})
        self.assertIsNone(task.error)
        self.assertIs(task.raise_for_error(), task)

    def test_submit_get_wait_and_list(self) -> None:
        task_id = "py-" + uuid.uuid4().hex
        submitted = self.client.submit("sleep", {"ms": 300}, id=task_id, priority=5, timeout_ms=10_000)
        self.assertEqual(submitted.id, task_id)
        self.assertIn(submitted.state, ("queued", "assigned", "running"))
        self.assertEqual(submitted.priority, 5)
        self.assertEqual(submitted.timeout_ms, 10_000)
        self.assertEqual(self.client.get(task_id).id, task_id)
        final = self.client.wait(task_id, 20)
        self.assertEqual(final.state, "succeeded")
        self.assertGreaterEqual(final.output["sleptMs"], 300)
        listed = self.client.list(capability="sleep", state=["succeeded", "failed"], limit=500)
        self.assertIn(task_id, [t.id for t in listed])
        self.assertTrue(all(t.capability == "sleep" for t in listed))
        self.assertNotIn(task_id, [t.id for t in self.client.list(state="queued")])

    def test_idempotency_key_returns_the_same_task(self) -> None:
        key = uuid.uuid4().hex
        a = self.client.submit("echo", {"k": 1}, idempotency_key=key)
        b = self.client.submit("echo", {"k": 1}, idempotency_key=key)
        self.assertEqual(a.id, b.id)

    def test_cancel_stops_a_running_task(self) -> None:
        task = self.client.submit("sleep", {"ms": 30_000})
        wait_until(lambda: self.client.get(task.id).state == "running", 10, "the task to run")
        cancelled = self.client.cancel(task.id)
        self.assertEqual(cancelled.state, "cancelled")
        self.assertEqual(self.client.wait(task.id, 5).state, "cancelled")
        with self.assertRaises(FleetError) as again:
            self.client.cancel(task.id)
        self.assertEqual(again.exception.code, "conflict")
        self.assertEqual(again.exception.status, 409)

    def test_artifacts_are_saved_to_a_path(self) -> None:
        data = bytes(range(256)) * 40
        import base64

        task = self.client.execute(
            "echo",
            {"artifact": {"name": "blob.bin", "contentType": "application/x-test", "base64": base64.b64encode(data).decode()}},
            wait_s=20,
        )
        self.assertEqual(task.state, "succeeded")
        self.assertEqual([(a.name, a.content_type, a.size) for a in task.artifacts], [("blob.bin", "application/x-test", len(data))])
        in_memory = self.client.artifact(task.id, "blob.bin")
        self.assertEqual(in_memory.data, data)
        self.assertEqual(in_memory.content_type, "application/x-test")
        with tempfile.TemporaryDirectory() as d:
            explicit = self.client.save_artifact(task.id, "blob.bin", Path(d) / "copy.bin")
            self.assertEqual(explicit.read_bytes(), data)
            [into_dir] = self.client.save_artifacts(task, Path(d) / "all")
            self.assertEqual(into_dir, Path(d) / "all" / "blob.bin")
            self.assertEqual(into_dir.read_bytes(), data)
            self.assertFalse(any(p.name.endswith(".part") for p in Path(d).rglob("*")))
            with self.assertRaises(FleetError) as missing:
                self.client.save_artifact(task.id, "nope.bin", Path(d) / "nope.bin")
            self.assertEqual(missing.exception.code, "not_found")

    def test_status_and_workers(self) -> None:
        status = self.client.status()
        self.assertTrue(status.manager_id)
        self.assertEqual([w.worker_type for w in status.workers], ["echo"])
        self.assertIn("sleep", status.workers[0].capabilities)
        self.assertEqual(status.types["echo"]["online"], 1)
        self.assertIsInstance(status.queue_depth, int)
        self.assertEqual([w.status in ("online", "busy") for w in self.client.workers()], [True])

    def test_event_stream_follows_a_task_with_progress(self) -> None:
        task_id = "py-ev-" + uuid.uuid4().hex
        with self.client.events(task_id=task_id, types=["task", "progress"]) as events:
            hello = events.next(timeout=10)
            self.assertEqual(hello["type"], "hello")
            self.client.submit("sleep", {"ms": 600, "progressEvery": 100}, id=task_id)
            kinds, percents = [], []
            for event in events:
                if event["type"] == "progress":
                    self.assertEqual(event["progress"]["taskId"], task_id)
                    percents.append(event["progress"]["percent"])
                else:
                    self.assertEqual(event["task"]["id"], task_id)
                    kinds.append(event["task"]["state"])
                    if event["task"]["state"] == "succeeded":
                        break
        self.assertEqual(kinds[0], "queued")
        self.assertEqual(kinds[-1], "succeeded")
        self.assertGreaterEqual(len(percents), 3)
        self.assertEqual(percents, sorted(percents))

    def test_a_failed_task_carries_its_error(self) -> None:
        task = self.client.execute("fail", {"code": "handler_error", "message": "boom"}, max_attempts=1, wait_s=20)
        self.assertEqual(task.state, "failed")
        assert task.error is not None
        self.assertEqual(task.error.code, "handler_error")
        with self.assertRaises(FleetError) as raised:
            task.raise_for_error()
        self.assertEqual(raised.exception.code, "handler_error")

    def test_a_bad_submission_is_refused_with_its_code_and_path(self) -> None:
        with self.assertRaises(FleetError) as bad:
            self.client.submit("echo", {}, priority=5000)
        err = bad.exception
        self.assertEqual(err.code, "invalid_task")
        self.assertEqual(err.status, 400)
        self.assertFalse(err.retryable)
        self.assertEqual(err.path, "priority")
        with self.assertRaises(FleetError) as bad_id:
            self.client.execute("echo", {}, id="has spaces")
        self.assertEqual((bad_id.exception.code, bad_id.exception.path), ("invalid_task", "id"))
        with self.assertRaises(FleetError) as unknown:
            self.client.submit("no-such-capability", {})
        self.assertEqual(unknown.exception.code, "unknown_capability")
        self.assertIn("echo", unknown.exception.details["known"])

    def test_a_payload_the_capability_refuses_is_refused_at_submit_with_its_path(self) -> None:
        # The echo worker describes sleep's payload ({ms: integer}); the manager checks it before queuing.
        with self.assertRaises(FleetError) as bad:
            self.client.submit("sleep", {"ms": "slow"})
        err = bad.exception
        self.assertEqual((err.code, err.status, err.path), ("invalid_payload", 400, "ms"))
        self.assertFalse(err.retryable)

    def test_unknown_task_is_not_found(self) -> None:
        for call in (self.client.get, self.client.cancel, lambda i: self.client.wait(i, 1)):
            with self.assertRaises(FleetError) as nf:
                call("no-such-task")
            self.assertEqual((nf.exception.code, nf.exception.status), ("not_found", 404))

    def test_a_wrong_token_is_unauthorized_over_http_and_the_event_stream(self) -> None:
        stranger = FleetClient(self.fleet.url, token="wrong")
        with self.assertRaises(FleetError) as http:
            stranger.list()
        self.assertEqual((http.exception.code, http.exception.status), ("unauthorized", 401))
        with self.assertRaises(FleetError) as ws:
            stranger.events()
        self.assertEqual(ws.exception.code, "unauthorized")
        with self.assertRaises(FleetError) as anonymous:
            FleetClient(self.fleet.url).submit("echo", {})
        self.assertEqual(anonymous.exception.code, "unauthorized")

    def test_an_unreachable_manager(self) -> None:
        nobody = FleetClient(f"http://127.0.0.1:{free_port()}", timeout=2)
        with self.assertRaises(FleetError) as http:
            nobody.status()
        self.assertEqual(http.exception.code, "manager_unreachable")
        self.assertTrue(http.exception.retryable)
        with self.assertRaises(FleetError) as ws:
            nobody.events(timeout=2)
        self.assertEqual(ws.exception.code, "manager_unreachable")


class ShutdownTest(unittest.TestCase):
    def test_a_manager_that_stops_ends_the_event_stream_with_its_typed_error(self) -> None:
        fleet = Fleet()
        try:
            client = FleetClient(fleet.url, token=TOKEN)
            with client.events() as events:
                self.assertEqual(events.next(timeout=10)["type"], "hello")
                fleet.procs[-1].terminate()  # the manager: SIGTERM, a graceful stop
                with self.assertRaises(FleetError) as stopped:
                    while True:
                        events.next(timeout=15)
            self.assertEqual(stopped.exception.code, "shutting_down")
            self.assertTrue(stopped.exception.retryable)
        finally:
            fleet.stop()


if __name__ == "__main__":
    unittest.main()
