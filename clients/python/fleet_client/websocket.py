"""The client end of a WebSocket (RFC 6455), enough to read the manager's event stream.

The standard library has no WebSocket client and this package must install offline with nothing but Python,
so this is a small one: the opening handshake (with the ``Sec-WebSocket-Accept`` check), unmasked frames
from the server, masked frames to it, fragments, ping/pong and the closing handshake. It reads text and
binary messages; it never needs to send data frames.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import struct
from typing import Dict, Optional, Tuple
from urllib.parse import urlsplit

_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


class HandshakeRefused(Exception):
    """The server answered the upgrade with an HTTP status instead of 101."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body


class ConnectionClosed(Exception):
    """The server closed the connection (``code`` from its close frame, 1006 when it just went away)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed {code} {reason}".strip())
        self.code = code
        self.reason = reason


class WebSocketClient:
    def __init__(
        self,
        url: str,
        headers: Optional[Dict[str, str]] = None,
        timeout: Optional[float] = 30.0,
        max_message_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss"):
            raise ValueError(f"not a WebSocket URL: {url}")
        secure = parts.scheme == "wss"
        host = parts.hostname or "localhost"
        port = parts.port or (443 if secure else 80)
        self._max = max_message_bytes
        self._closed = False
        sock = socket.create_connection((host, port), timeout=timeout)
        if secure:
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
        self._sock = sock
        self._buf = b""
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {target} HTTP/1.1",
            f"Host: {host}:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            status, response_headers = self._read_head()
            if status != 101:
                raise HandshakeRefused(status, self._read_rest(response_headers))
            expected = base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()
            if response_headers.get("sec-websocket-accept") != expected:
                raise ConnectionClosed(1002, "bad Sec-WebSocket-Accept")
        except BaseException:
            sock.close()
            raise

    # --- reading ---

    def _recv_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self._sock.recv(max(65536, n - len(self._buf)))
            if not chunk:
                raise ConnectionClosed(1006, "connection lost")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _read_head(self) -> Tuple[int, Dict[str, str]]:
        while b"\r\n\r\n" not in self._buf:
            if len(self._buf) > 64 * 1024:
                raise ConnectionClosed(1002, "response head too large")
            chunk = self._sock.recv(4096)
            if not chunk:
                raise ConnectionClosed(1006, "connection closed during the handshake")
            self._buf += chunk
        head, self._buf = self._buf.split(b"\r\n\r\n", 1)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        headers: Dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    def _read_rest(self, headers: Dict[str, str]) -> bytes:
        length = headers.get("content-length")
        try:
            if length is not None and length.isdigit():
                return self._recv_exact(min(int(length), 1024 * 1024))
            while len(self._buf) < 1024 * 1024:
                chunk = self._sock.recv(65536)
                if not chunk:
                    break
                self._buf += chunk
        except (OSError, ConnectionClosed):
            pass
        return self._buf

    def recv(self) -> bytes:
        """The next message's bytes (text as UTF-8). Answers pings; raises ConnectionClosed at the end."""
        if self._closed:
            raise ConnectionClosed(1006, "already closed")
        message = b""
        opcode_of_message: Optional[int] = None
        while True:
            b1, b2 = self._recv_exact(2)
            fin, opcode = b1 & 0x80, b1 & 0x0F
            if b2 & 0x80:
                self._fail(1002, "the server masked a frame")
            length = b2 & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._recv_exact(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._recv_exact(8))
            if opcode >= 0x8 and (length > 125 or not fin):
                self._fail(1002, "bad control frame")
            if len(message) + length > self._max:
                self._fail(1009, "message too big")
            data = self._recv_exact(length)
            if opcode == _OP_PING:
                self._send(_OP_PONG, data)
                continue
            if opcode == _OP_PONG:
                continue
            if opcode == _OP_CLOSE:
                code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                reason = data[2:].decode("utf-8", "replace")
                self._finish(code)
                raise ConnectionClosed(code, reason)
            if opcode == _OP_CONT:
                if opcode_of_message is None:
                    self._fail(1002, "continuation without a message")
            elif opcode in (_OP_TEXT, _OP_BINARY):
                if opcode_of_message is not None:
                    self._fail(1002, "new message inside a fragmented one")
                opcode_of_message = opcode
            else:
                self._fail(1002, f"unknown opcode {opcode}")
            message += data
            if fin:
                return message

    # --- writing ---

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self._sock.sendall(head + mask + masked)

    def _finish(self, code: int) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._send(_OP_CLOSE, struct.pack("!H", code if code not in (1005, 1006) else 1000))
        except OSError:
            pass
        self._sock.close()

    def _fail(self, code: int, reason: str) -> None:
        self._finish(code)
        raise ConnectionClosed(code, reason)

    def settimeout(self, timeout: Optional[float]) -> None:
        self._sock.settimeout(timeout)

    def close(self) -> None:
        """Sends a close frame (1000) and closes the socket; safe to call twice."""
        self._finish(1000)
