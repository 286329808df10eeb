"""The command's output streams: stderr passed on with the token masked, stdout kept up to a bound.

Both are read by threads of their own while the command runs, and both hold a bounded amount whatever the
command writes: a child that writes hundreds of MiB on one line costs the runner no more than a piece of it.
"""

from __future__ import annotations

import codecs
import collections
import sys
from typing import IO

from callback_kit.logs import fingerprint

#: How much of the end of the command's stderr goes into a failure cause.
STDERR_TAIL_CHARS = 4000
#: The most of the command's stderr held at once: it is passed on in pieces, so a line of any length costs no
#: more memory than this (plus a token's length, held back in case a token is split between two pieces).
STDERR_CHUNK_BYTES = 65536


class StderrRelay:
    """Passes a stream on to ``out`` with every copy of ``token`` masked, keeping its last characters.

    Example:
        >>> import io
        >>> out = io.StringIO()
        >>> relay = StderrRelay("secret-token", out)
        >>> relay.relay(io.BytesIO(b"got secret-token\\nbye\\n"))
        >>> out.getvalue()
        'got tok-930bbdc51b6a\\nbye\\n'
        >>> relay.tail()
        'got tok-930bbdc51b6a\\nbye'
    """

    def __init__(self, token: str, out: IO[str] | None = None) -> None:
        self.token = token
        self.out = out
        self._tail: collections.deque[str] = collections.deque()
        self._tail_chars = 0

    def relay(self, stream: IO[bytes]) -> None:
        """Read ``stream`` to its end, passing it on in pieces of at most a line or ``STDERR_CHUNK_BYTES``."""
        token, masked = self.token, fingerprint(self.token)
        # A piece that ends mid-line keeps its last len(token) - 1 characters back: they may begin a token that
        # the next piece completes, and must be masked with it.
        keep = len(token) - 1
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pending = ""
        for raw in iter(lambda: stream.readline(STDERR_CHUNK_BYTES), b""):
            pending = (pending + decoder.decode(raw)).replace(token, masked)
            if pending.endswith("\n"):
                text, pending = pending, ""
            elif len(pending) > keep:
                cut = len(pending) - keep
                text, pending = pending[:cut], pending[cut:]
            else:
                continue
            self._emit(text)
        self._emit((pending + decoder.decode(b"", final=True)).replace(token, masked))

    def tail(self) -> str:
        """The last ``STDERR_TAIL_CHARS`` characters passed on, without trailing whitespace."""
        return "".join(self._tail)[-STDERR_TAIL_CHARS:].rstrip()

    def _emit(self, text: str) -> None:
        if not text:
            return
        print(text, end="", file=self.out if self.out is not None else sys.stderr, flush=True)
        self._tail.append(text)
        self._tail_chars += len(text)
        while self._tail_chars - len(self._tail[0]) >= STDERR_TAIL_CHARS:
            self._tail_chars -= len(self._tail.popleft())


def read_capped(stream: IO[bytes], limit: int) -> bytes:
    """Read ``stream`` to its end; keep at most ``limit + 1`` bytes (one more tells that it went over).

    Example:
        >>> import io
        >>> read_capped(io.BytesIO(b"abcdef"), 3)
        b'abcd'
    """
    kept: list[bytes] = []
    size = 0
    for chunk in iter(lambda: stream.read(65536), b""):
        if size <= limit:  # drain the rest without keeping it, so the command is never blocked on a full pipe
            kept.append(chunk[: limit + 1 - size])
            size += len(chunk)
    return b"".join(kept)
