"""Messages between the parent and a fork server: 4-byte big-endian length, then UTF-8 JSON.

JSON rather than pickle on purpose: a pickle from a process that ran hostile code could run code
in whoever unpickles it. Reads and writes take a deadline so a hung peer cannot hang the caller.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time

MAX_MESSAGE = 256 << 20  # a request carries a program; no sane one is near this


class PeerGone(Exception):
    """The other side closed its end (it exited or was killed)."""


class PeerTimeout(Exception):
    """Nothing (or not all of a message) arrived before the deadline."""


def _wait(fd: int, event: int, deadline: float | None) -> None:
    poller = select.poll()
    poller.register(fd, event)
    while True:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        if poller.poll(None if timeout is None else timeout * 1000):
            return
        if deadline is not None and time.monotonic() >= deadline:
            raise PeerTimeout


def read_exact(fd: int, n: int, deadline: float | None = None) -> bytes:
    chunks, got = [], 0
    while got < n:
        _wait(fd, select.POLLIN, deadline)
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise PeerGone
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def write_all(fd: int, data: bytes, deadline: float | None = None) -> None:
    """Write everything; the deadline holds only if `fd` is non-blocking (the parent's is)."""
    view = memoryview(data)
    while view:
        _wait(fd, select.POLLOUT, deadline)
        try:
            view = view[os.write(fd, view[: 1 << 20]) :]
        except BlockingIOError:  # a non-blocking pipe with less room than asked for
            continue
        except BrokenPipeError as exc:
            raise PeerGone from exc


def send(fd: int, message: dict, deadline: float | None = None) -> None:
    data = json.dumps(message).encode()
    write_all(fd, struct.pack(">I", len(data)) + data, deadline)


def receive(fd: int, deadline: float | None = None) -> dict:
    """The next message; PeerGone at a clean end of stream, PeerTimeout past the deadline."""
    (size,) = struct.unpack(">I", read_exact(fd, 4, deadline))
    if size > MAX_MESSAGE:
        raise ValueError(f"message of {size} bytes")
    message = json.loads(read_exact(fd, size, deadline))
    if not isinstance(message, dict):
        raise ValueError("message is not an object")
    return message
