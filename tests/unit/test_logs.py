"""The key=value log formatter: one event is one line, whatever the values hold."""

from __future__ import annotations

import logging

import pytest

from streamplane.logs import MAX_VALUE_CHARS, KeyValueFormatter


def _format(**extra: object) -> str:
    record = logging.LogRecord("sp.test", logging.INFO, __file__, 1, "worker connected", (), None)
    record.__dict__.update(extra)
    return KeyValueFormatter("%(levelname)s %(name)s %(message)s").format(record)


def test_plain_tokens_stay_as_they_are() -> None:
    line = _format(worker="host-1.example.com-42", session="ab12", max_inflight=4, ok=True)
    assert line == (
        "INFO sp.test worker connected worker=host-1.example.com-42 session=ab12 "
        "max_inflight=4 ok=True"
    )


@pytest.mark.parametrize(
    "value",
    [
        "w1\n2026-01-01 00:00:00 INFO forged event",
        "w1\r\nforged",
        "a b",
        "",
        "x=1 admin=true",
        "tab\there",
        "esc\x1b[2Jcleared",
        "nul\x00byte",
        "line\u2028separator",
        "quote\"and'both",
    ],
)
def test_other_values_are_quoted_and_escaped_on_one_line(value: str) -> None:
    line = _format(worker=value, session="s1")
    assert "\n" not in line
    assert "\r" not in line
    assert "\u2028" not in line
    assert "\x1b" not in line
    assert "\x00" not in line
    assert line.endswith(" session=s1"), line  # nothing can pose as another field
    shown = line.removeprefix("INFO sp.test worker connected worker=").removesuffix(" session=s1")
    assert shown.startswith('"'), shown
    assert shown.endswith('"'), shown


def test_long_values_are_cut() -> None:
    line = _format(worker="x" * 10_000_000)
    assert len(line) < MAX_VALUE_CHARS + 200
    assert "chars)" in line
