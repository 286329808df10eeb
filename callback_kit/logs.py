"""The library's logger and token fingerprints.

A task token is a bearer credential: whoever holds it can complete the task. callback-kit never logs one; it
logs :func:`fingerprint` (a short hash, stable across processes, enough to correlate log lines) instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, unquote

if TYPE_CHECKING:
    from aws_lambda_powertools import Logger

_lock = threading.Lock()
_logger: Logger | None = None


def fingerprint(token: str | None) -> str:
    """A short, non-reversible identifier for a task token, safe to log.

    Example:
        >>> fingerprint("AAAAKgAAAAIAAAAAAAAAA")
        'tok-b81e622a5310'
        >>> fingerprint(None)
        'tok-none'
    """
    if not token:
        return "tok-none"
    return "tok-" + hashlib.sha256(token.encode("utf-8", errors="replace")).hexdigest()[:12]


def mask_token(text: str, token: str | None) -> str:
    """``text`` with every copy of ``token`` replaced by its fingerprint, URL-encoded copies included.

    An error's text may quote the request (a Stubber's mismatch, a hook's message, a stopped container's reason),
    and a durable callback id travels in the request's path, which a connection error quotes URL-encoded
    (``.../durable-execution-callbacks/AQB%2Bx%3D%3D/succeed``).

    Example:
        >>> mask_token("POST /durable-execution-callbacks/a%2Bb%3D/fail failed", "a+b=") == (
        ...     "POST /durable-execution-callbacks/" + fingerprint("a+b=") + "/fail failed")
        True
    """
    if not token:
        return text
    for form in {token, quote(token, safe=""), quote(token)}:
        text = text.replace(form, fingerprint(token))
    return text


def get_logger() -> Logger:
    """The powertools Logger callback-kit writes to, created on first use.

    It shares the service name of the function (``POWERTOOLS_SERVICE_NAME``) so that a powertools Logger made
    by the user's own code, with the same service, writes to the same place in the same JSON format.
    """
    global _logger
    if _logger is None:
        with _lock:
            if _logger is None:
                # Imported on first use: the Logger costs ~50 ms of import that a cold start need not pay twice.
                from aws_lambda_powertools import Logger

                _logger = Logger(service=_service())
    return _logger


#: The environment variables from which powertools' Logger takes its level (Lambda's own first).
_LEVEL_ENV = ("AWS_LAMBDA_LOG_LEVEL", "POWERTOOLS_LOG_LEVEL", "LOG_LEVEL")


class _LazyLogger:
    """Stands for :func:`get_logger`'s Logger, made on the first line actually logged."""

    def __getattr__(self, name: str) -> Any:
        return getattr(get_logger(), name)


_LAZY = _LazyLogger()


def lazy_logger() -> Logger:
    """The Logger of :func:`get_logger`, made only when a line is logged through it.

    For code whose happy path logs nothing: asking for the Logger up front would import powertools (~20 ms of a
    cold start) in a task that never writes a line.

    Example:
        >>> log = lazy_logger()  # nothing imported or built yet
    """
    return cast("Logger", _LAZY)


def debug_enabled() -> bool:
    """Whether callback-kit's DEBUG lines are written, without creating the Logger just to ask.

    The happy path logs only at DEBUG; asking the powertools Logger would import powertools (~20 ms of a cold
    start) and build a record that is then dropped. Until callback-kit's Logger exists, its level can only come
    from the environment (powertools reads it at creation) or from the standard logger of the same name. The
    environment is read once, at the first call (as powertools reads it once, when the Logger is made): it is
    on every task's path.

    Example:
        >>> isinstance(debug_enabled(), bool)
        True
    """
    global _env_debug, _named
    if _logger is not None:
        return _std_logger().isEnabledFor(logging.DEBUG)
    if _env_debug is None:
        _env_debug = any(os.environ.get(name, "").upper() == "DEBUG" for name in _LEVEL_ENV)
    if _env_debug:
        get_logger()  # powertools sets the level from the environment as it makes the Logger
        return _std_logger().isEnabledFor(logging.DEBUG)
    if _named is None:
        _named = logging.getLogger(_service())
    return _named.isEnabledFor(logging.DEBUG)


#: Whether a level variable asked for DEBUG, read at the first debug_enabled() call (None: not read yet).
_env_debug: bool | None = None
#: The standard logger named like callback-kit's Logger, before that Logger exists.
_named: logging.Logger | None = None


def _service() -> str:
    return os.environ.get("POWERTOOLS_SERVICE_NAME", "callback-kit")


_std: logging.Logger | None = None


def _std_logger() -> logging.Logger:
    global _std
    if _std is None:
        _std = logging.getLogger(get_logger().name)
    return _std


#: The loggers through which botocore and urllib3 may write request parameters or bodies at DEBUG.
BOTOCORE_LOGGERS: tuple[str, ...] = (
    "botocore",
    "botocore.endpoint",
    "botocore.auth",
    "botocore.hooks",
    "botocore.parsers",
    "botocore.retryhandler",
    "botocore.httpsession",
    "botocore.awsrequest",
    "urllib3.connectionpool",
)

# A token value after a token key, in the forms botocore's logs show: a dict repr ('taskToken': '...'), a JSON
# body inside a bytes repr (b'{"taskToken": "..."}'), or a query/form field (taskToken=...). The keys are the
# spellings a task token travels under (sources.tokens.TOKEN_KEYS, any case, with or without "_"): taskToken,
# TaskToken, MyTaskToken, task_token, and a bare Token, as in an activity input's context.Task.Token. A key that
# only ends in "token" (nextToken, X-Amz-Security-Token) is not one of them.
# Any run of quotes and backslashes may surround the key and open the value: a token someone quoted
# (JSON.stringify), inside a JSON string inside a JSON body inside a bytes repr, is written '\\"AQB...\\"'.
# A Lambda durable callback id is a bearer credential too: it travels under callbackId / CallbackId / callback_id,
# and in the REST path of the durable callback API (/2025-12-01/durable-execution-callbacks/{CallbackId}/succeed),
# URL-encoded there, which botocore logs as the request URL.
_TOKEN_VALUE = re.compile(
    r"""(?P<key>(?<![\w-])(?:(?:my_?)?(?:task_?)?token|callback_?id)[\\"']*\s*[:=]\s*[\\"']*)"""
    r"""(?P<value>[^"'\\\s,&}]+)"""
    r"""|(?P<path>durable-execution-callbacks/)(?P<encoded>[^/\s"'?]+)""",
    re.IGNORECASE,
)
#: A token found after a key is also masked wherever else it appears in the same record (an activity's input may
#: carry it under any key); shorter values are masked where they were found only, as they may be common words.
_MIN_COPY_CHARS = 20


def redact_tokens(text: str) -> str:
    """Replace every task token value that follows a token key in ``text``, and every other copy of it, by its
    fingerprint.

    Example:
        >>> redact_tokens("params: {'taskToken': 'AAAAKgAAAAIAAAAAAAAAA', 'output': '{}'}")
        "params: {'taskToken': 'tok-b81e622a5310', 'output': '{}'}"
        >>> redact_tokens("{'taskToken': 'AAAAKgAAAAIAAAAAAAAAA', 'input': '{cb: AAAAKgAAAAIAAAAAAAAAA}'}")
        "{'taskToken': 'tok-b81e622a5310', 'input': '{cb: tok-b81e622a5310}'}"

        Durable callback ids too, under their key and in the API's REST path (URL-encoded there):

        >>> redact_tokens("POST https://lambda/2025-12-01/durable-execution-callbacks/AAAA%2BKgAAAAIAAAAAAAA%3D/fail")
        'POST https://lambda/2025-12-01/durable-execution-callbacks/tok-6cfce2169065/fail'
        >>> redact_tokens("{'CallbackId': 'AAAA+KgAAAAIAAAAAAAA='}")
        "{'CallbackId': 'tok-6cfce2169065'}"
    """
    values = set()
    for match in _TOKEN_VALUE.finditer(text):
        if match.group("value") is not None:
            values.add(match.group("value"))
        else:  # the id as it is, too: the same record may quote the request's parameters beside its URL
            values.add(unquote(match.group("encoded")))
    text = _TOKEN_VALUE.sub(_masked_match, text)
    copies = sorted((value for value in values if len(value) >= _MIN_COPY_CHARS), key=len, reverse=True)
    if copies:
        text = re.sub("|".join(map(re.escape, copies)), lambda m: fingerprint(m.group()), text)
    return text


def _masked_match(match: re.Match[str]) -> str:
    if match.group("value") is not None:
        return match.group("key") + fingerprint(match.group("value"))
    # The fingerprint of the id itself, so that the line correlates with callback-kit's own lines about it.
    return match.group("path") + fingerprint(unquote(match.group("encoded")))


class TokenRedactingFilter(logging.Filter):
    """A logging filter that rewrites records so that no task token written after a token key remains.

    botocore's DEBUG logging prints request parameters and bodies unmasked, and the token is a bearer credential.
    :func:`install_token_redaction` attaches it to botocore's loggers; attach it to your own handlers too if they
    receive records from other libraries that print request bodies.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot be formatted is left for the handler to report
            return True
        redacted = redact_tokens(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info:
            # botocore logs a failed request's exception with its traceback, and a durable callback id sits in
            # the request URL it quotes. The traceback is kept as redacted text (which formatters print in its
            # place); the exception object itself is dropped from the record only when it quoted one.
            try:
                trace = logging.Formatter().formatException(record.exc_info)
            except Exception:
                return True
            clean = redact_tokens(trace)
            if clean != trace:
                record.exc_info, record.exc_text = None, clean
        return True


_redactor = TokenRedactingFilter()


def install_token_redaction(names: tuple[str, ...] = BOTOCORE_LOGGERS) -> None:
    """Attach :class:`TokenRedactingFilter` to the named loggers (botocore's by default); idempotent.

    callback-kit calls it when it builds its default Step Functions client. Call it yourself when you pass your
    own client (``client=``) and turn botocore's DEBUG logging on.

    Example:
        >>> install_token_redaction()
        >>> any(isinstance(f, TokenRedactingFilter) for f in logging.getLogger("botocore.endpoint").filters)
        True
    """
    for name in names:
        logger = logging.getLogger(name)
        if _redactor not in logger.filters:
            logger.addFilter(_redactor)
