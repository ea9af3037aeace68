"""Logging: human-readable lines by default, JSON lines with ``--log-format json``.

Every line logged while serving a connection carries that connection's client
id (a context variable set in the connection's task, inherited by the tasks
it starts). Tokens never reach the output: anything shaped like a JWT or a
``Bearer`` credential is replaced by ``[redacted]``.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time

__all__ = ["BadRequestFilter", "client_id_var", "quiet_bad_requests", "setup_logging"]

#: the client id of the connection being served in this task, if any
client_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "wirehub_client_id", default=None
)

_SECRET = re.compile(r"eyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*|(?i:bearer)\s+[\w.~+/=-]{8,}")


def redact(text: str) -> str:
    return _SECRET.sub("[redacted]", text)


class _ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "client"):
            record.client = client_id_var.get()
        return True


class BadRequestFilter(logging.Filter):
    """aiohttp's traceback for a malformed HTTP request becomes one INFO line.

    The client already got its 400; a scanner sending garbage should not fill
    the log with tracebacks at ERROR. (nginx logs the same at ``info``.)
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and _is_bad_http(exc):
            detail = " ".join(str(exc).split())
            record.msg, record.args = f"{record.getMessage()}: bad HTTP request: {detail}", None
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _is_bad_http(exc: BaseException) -> bool:
    from aiohttp.http_exceptions import BadHttpMessage

    return isinstance(exc, BadHttpMessage)


def quiet_bad_requests() -> None:
    """Install :class:`BadRequestFilter` on aiohttp's server logger (once)."""
    logger = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequestFilter) for f in logger.filters):
        logger.addFilter(BadRequestFilter())


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = redact(super().format(record))
        client = getattr(record, "client", None)
        if client and client not in record.getMessage():
            line += f" [client {client}]"
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        client = getattr(record, "client", None)
        if client:
            entry["client"] = client
        if record.exc_info:
            entry["traceback"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "info", fmt: str = "text") -> None:
    """Configure the root logger once for ``wirehub serve``."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
