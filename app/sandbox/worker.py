"""A sandbox worker process: ``python -m app.sandbox.worker MEMORY_BYTES MAX_REPLY_BYTES``.

Started by the pool (``pool``) with a minimal environment (no DATABASE_URL, no keys). It imports
what the tasks need, then limits itself with the operating system before it takes any work:

* RLIMIT_AS: its address space may grow by MEMORY_BYTES past what the imports took, no more — an
  allocation beyond that fails (MemoryError), however the memory is asked for;
* RLIMIT_FSIZE 0 (it writes no files), RLIMIT_NOFILE (no new files or sockets beyond a few),
  RLIMIT_CORE 0.

Then it answers framed JSON requests ``[task, args]`` on stdin with ``["ok", result]``,
``["error", message]``, ``["memory", message]`` or ``["output", message]`` on stdout, one at a time.
After a MemoryError it answers and exits (its heap may be in a poor state); the pool starts another.
Time is not its business: the pool kills a worker that is late.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import sys
from typing import Any, BinaryIO

from . import codec
from .tasks import TASKS


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def _limit(memory_bytes: int) -> None:
    cap = _address_space() + memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))


def _read(stream: BinaryIO, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _send(stream: BinaryIO, message: Any, max_reply: int) -> None:
    data = codec.frame(message)
    if len(data) > max_reply:
        data = codec.frame(["output", f"the result is {len(data)} bytes; at most {max_reply} are allowed"])
    stream.write(data)
    stream.flush()


def main(argv: list[str]) -> int:
    memory_bytes, max_reply = int(argv[0]), int(argv[1])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the server; it stops us
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything printed by accident must not corrupt the frames
    _limit(memory_bytes)
    _send(stdout, ["ready", os.getpid()], max_reply)
    while True:
        header = _read(stdin, codec.HEADER.size)
        if header is None:
            return 0  # the server closed the pipe: stop
        body = _read(stdin, codec.HEADER.unpack(header)[0])
        if body is None:
            return 0
        try:
            name, args = json.loads(body)
            result = TASKS[name](*args)
        except MemoryError:
            del body
            _send(stdout, ["memory", f"more than {memory_bytes // (1024 * 1024)} MB"], max_reply)
            return 3
        except Exception as exc:
            _send(stdout, ["error", f"{type(exc).__name__}: {exc}"], max_reply)
            continue
        try:
            _send(stdout, ["ok", result], max_reply)
        except MemoryError:
            _send(stdout, ["memory", f"more than {memory_bytes // (1024 * 1024)} MB"], max_reply)
            return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
