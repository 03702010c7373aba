"""Structured logging: one line per event, the message plus its `extra` fields as key=value.

Logged values often come from outside (a worker's id, a record's error, an exception's
text), so the formatter never lets one break the line: a value that is not a plain token
is shown as a JSON string (newlines, control and non-ASCII characters escaped), and a
value longer than `MAX_VALUE_CHARS` is cut. A reader of the log can thus trust that each
line is one event and each ``key=`` is ours.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}

#: Longest value shown whole: a 10 MB id must not become a 10 MB log line.
MAX_VALUE_CHARS = 2048
# What may go unquoted: ids, numbers, topic names, host:port, paths, versions.
_PLAIN = re.compile(r"[A-Za-z0-9_.:/@+,\-]+")
# Characters that would split the message itself (it is ours, but may carry %s args).
_LINE_BREAKING = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")


class KeyValueFormatter(logging.Formatter):
    """`time level logger message key=value ...`, the extras in the order given."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        """The message with any line-breaking character escaped."""
        record.message = _LINE_BREAKING.sub(_escape_char, record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        """The line: the standard format, then each extra as key=value."""
        base = super().format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        if not extras:
            return base
        return base + " " + " ".join(f"{k}={show(v)}" for k, v in extras.items())


def show(value: Any) -> str:
    """One logged value: as is when a plain token, else a cut, escaped JSON string."""
    text = str(value)
    if len(text) > MAX_VALUE_CHARS:
        text = f"{text[:MAX_VALUE_CHARS]}...(+{len(text) - MAX_VALUE_CHARS} chars)"
    if _PLAIN.fullmatch(text):
        return text
    return json.dumps(text, ensure_ascii=True)


def _escape_char(match: re.Match[str]) -> str:
    return json.dumps(match.group(0), ensure_ascii=True)[1:-1]


def configure(level: str = "INFO") -> None:
    """Log to stderr; safe to call more than once."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
