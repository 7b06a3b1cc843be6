"""The client's guards, attacked by hostile servers written here (no manager needed): the WebSocket reader's
frame checks and the artifact saver's path check."""

from __future__ import annotations

import base64
import hashlib
import http.server
import importlib.util
import socket
import struct
import sys
import tempfile
import threading
import unittest
from pathlib import Path
from typing import Callable, List

HERE = Path(__file__).resolve().parent
if importlib.util.find_spec("fleet_client") is None:
    sys.path.insert(0, str(HERE.parent))

from fleet_client import FleetClient, FleetError  # noqa: E402
from fleet_client.websocket import ConnectionClosed, WebSocketClient  # noqa: E402

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def frame(opcode: int, payload: bytes, fin: bool = True, masked: bool = False) -> bytes:
    first = (0x80 if fin else 0) | opcode
    n = len(payload)
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head = struct.pack("!BB", first, mask_bit | n)
    elif n < 65536:
        head = struct.pack("!BBH", first, mask_bit | 126, n)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, n)
    if masked:
        key = b"\x01\x02\x03\x04"
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload


def read_client_frame(conn: socket.socket) -> tuple:
    """One masked frame from the client: (opcode, payload)."""

    def exact(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    b1, b2 = exact(2)
    assert b2 & 0x80, "client frames must be masked"
    n = b2 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", exact(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", exact(8))
    key = exact(4)
    return b1 & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(exact(n)))


class FakeServer:
    """Accepts one WebSocket, answers the handshake (rightly or not), then runs `script` on the socket."""

    def __init__(self, script: Callable[[socket.socket], None], accept_ok: bool = True) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.received: List[tuple] = []
        self.errors: List[BaseException] = []

        def serve() -> None:
            conn, _ = self.sock.accept()
            with conn:
                try:
                    head = b""
                    while b"\r\n\r\n" not in head:
                        head += conn.recv(4096)
                    key = [
                        line.split(":", 1)[1].strip()
                        for line in head.decode().split("\r\n")
                        if line.lower().startswith("sec-websocket-key:")
                    ][0]
                    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
                    if not accept_ok:
                        accept = base64.b64encode(b"x" * 20).decode()
                    conn.sendall(
                        (
                            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
                        ).encode()
                    )
                    script(conn)
                    conn.settimeout(2)
                    try:
                        while True:
                            self.received.append(read_client_frame(conn))
                    except (EOFError, OSError):
                        pass
                except BaseException as err:  # noqa: BLE001 (reported to the test)
                    self.errors.append(err)

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()

    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/events"

    def close(self) -> None:
        self.thread.join(5)
        self.sock.close()


class WebSocketGuardsTest(unittest.TestCase):
    def test_fragments_are_joined_and_pings_answered(self) -> None:
        def script(conn: socket.socket) -> None:
            conn.sendall(frame(0x1, b'{"a":', fin=False))
            conn.sendall(frame(0x9, b"are you there"))  # a ping between fragments
            conn.sendall(frame(0x0, b"1}"))
            conn.sendall(frame(0x1, b"x" * 70_000))  # a 64-bit length
            conn.sendall(frame(0x8, struct.pack("!H", 1000) + b"bye"))

        server = FakeServer(script)
        ws = WebSocketClient(server.url(), timeout=5)
        self.assertEqual(ws.recv(), b'{"a":1}')
        self.assertEqual(ws.recv(), b"x" * 70_000)
        with self.assertRaises(ConnectionClosed) as closed:
            ws.recv()
        self.assertEqual((closed.exception.code, closed.exception.reason), (1000, "bye"))
        server.close()
        self.assertEqual(server.errors, [])
        self.assertIn((0xA, b"are you there"), server.received)  # the pong, masked, with the ping's data
        self.assertEqual(server.received[-1][0], 0x8)  # and the closing handshake answered

    def test_a_masked_server_frame_is_a_protocol_error(self) -> None:
        server = FakeServer(lambda conn: conn.sendall(frame(0x1, b"hi", masked=True)))
        ws = WebSocketClient(server.url(), timeout=5)
        with self.assertRaises(ConnectionClosed) as closed:
            ws.recv()
        self.assertEqual(closed.exception.code, 1002)
        server.close()

    def test_a_message_over_the_limit_is_refused_before_it_is_read(self) -> None:
        # The header claims 2^40 bytes; the client must refuse it, not try to buffer it.
        huge = struct.pack("!BBQ", 0x81, 127, 1 << 40)
        server = FakeServer(lambda conn: conn.sendall(huge))
        ws = WebSocketClient(server.url(), timeout=5, max_message_bytes=1 << 20)
        with self.assertRaises(ConnectionClosed) as closed:
            ws.recv()
        self.assertEqual(closed.exception.code, 1009)
        server.close()

    def test_fragments_adding_up_past_the_limit_are_refused(self) -> None:
        def script(conn: socket.socket) -> None:
            for _ in range(5):
                conn.sendall(frame(0x1 if _ == 0 else 0x0, b"y" * 1000, fin=False))

        server = FakeServer(script)
        ws = WebSocketClient(server.url(), timeout=5, max_message_bytes=3000)
        with self.assertRaises(ConnectionClosed) as closed:
            ws.recv()
        self.assertEqual(closed.exception.code, 1009)
        server.close()

    def test_a_wrong_accept_key_is_refused(self) -> None:
        server = FakeServer(lambda conn: None, accept_ok=False)
        with self.assertRaises(ConnectionClosed) as closed:
            WebSocketClient(server.url(), timeout=5)
        self.assertEqual(closed.exception.code, 1002)
        server.close()

    def test_a_refused_upgrade_becomes_the_managers_typed_error(self) -> None:
        body = b'{"error":{"code":"unauthorized","message":"wrong token","retryable":false}}'
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)

        def serve() -> None:
            conn, _ = sock.accept()
            with conn:
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\r\n" + body)

        threading.Thread(target=serve, daemon=True).start()
        client = FleetClient(f"http://127.0.0.1:{sock.getsockname()[1]}", token="t")
        with self.assertRaises(FleetError) as refused:
            client.events(timeout=5)
        self.assertEqual((refused.exception.code, refused.exception.status), ("unauthorized", 401))
        sock.close()


class ArtifactPathGuardTest(unittest.TestCase):
    """A worker names its artifacts; a name must never write outside the directory it is saved into."""

    @classmethod
    def setUpClass(cls) -> None:
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                self.send_response(200)
                self.send_header("content-type", "application/octet-stream")
                self.send_header("content-length", "5")
                self.end_headers()
                self.wfile.write(b"bytes")

            def log_message(self, *args: object) -> None:
                pass

        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        cls.client = FleetClient(f"http://127.0.0.1:{cls.server.server_address[1]}")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.shutdown()
        cls.server.server_close()

    def test_a_name_with_directories_lands_inside_the_directory(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            inner = Path(d) / "inner"
            inner.mkdir()
            saved = self.client.save_artifact("t1", "../../escape.bin", inner)
            self.assertEqual(saved, inner / "escape.bin")
            self.assertEqual(saved.read_bytes(), b"bytes")
            self.assertEqual(sorted(p.name for p in Path(d).iterdir()), ["inner"])

    def test_a_name_that_is_no_file_name_is_refused(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            for name in ("..", "/", "."):
                with self.assertRaises(FleetError) as bad:
                    self.client.save_artifact("t1", name, d)
                self.assertEqual(bad.exception.code, "invalid_task")
            self.assertEqual(list(Path(d).iterdir()), [])


if __name__ == "__main__":
    unittest.main()
