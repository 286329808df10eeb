"""Capture every log line of a schedule at DEBUG, from every logger, as the text a log sink would receive."""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from typing import Any

from callback_kit.logs import BOTOCORE_LOGGERS, get_logger


class _Collect(logging.Handler):
    """Keeps the message, the extra fields and the traceback of every record."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a record that cannot be formatted still carries its msg and args
            text = f"{record.msg!r} {record.args!r}"
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if extras:
            text += " " + repr(extras)
        if record.exc_info:
            with contextlib.suppress(Exception):
                text += " " + logging.Formatter().formatException(record.exc_info)
        self.lines.append(text)


_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None)))


@contextlib.contextmanager
def captured_logs() -> Iterator[list[str]]:
    """Turn DEBUG on for the root, callback-kit's and botocore's loggers and collect what they log.

    The powertools Logger's own stream handler is pointed at a buffer meanwhile: its JSON lines are part of what a
    log sink receives (persistent keys included), so they are collected too, and nothing is printed.
    """
    collect = _Collect()
    library = get_logger()._logger
    names = ["", library.name, *BOTOCORE_LOGGERS]
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    buffer = io.StringIO()
    streams: list[tuple[logging.StreamHandler[Any], Any]] = []
    for handler in library.handlers:
        if isinstance(handler, logging.StreamHandler):
            streams.append((handler, handler.setStream(buffer)))
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(collect)
    if not library.propagate:
        library.addHandler(collect)
    try:
        yield collect.lines
    finally:
        logging.getLogger().removeHandler(collect)
        library.removeHandler(collect)
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        for handler, stream in streams:
            handler.setStream(stream)
        collect.lines.append(buffer.getvalue())
