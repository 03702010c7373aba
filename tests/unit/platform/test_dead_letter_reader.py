"""Dead letters read back: one escaped line each, counts by tenant and kind."""

from __future__ import annotations

from dataclasses import dataclass

from streamplane.platform import headers as h
from streamplane.platform.dead_letter_reader import count_by, dead_letter


@dataclass
class FakeMessage:
    """The parts of a consumed record a dead letter is read from."""

    _value: bytes
    _headers: list[tuple[str, bytes | None]]
    _offset: int = 7

    def topic(self) -> str:
        return "in.dlq"

    def partition(self) -> int:
        return 2

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return None

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return self._headers

    def timestamp(self) -> tuple[int, int]:
        return (0, 1000)

    def error(self) -> None:
        return None


def _headers(tenant: str, kind: str, reason: str) -> list[tuple[str, bytes | None]]:
    source = h.source_headers("in", 1, 42, tenant, 3)
    return [(k, v if isinstance(v, bytes) or v is None else v.encode()) for k, v in
            h.dead_letter_headers([], source, kind, reason)]  # fmt: skip


def test_a_dead_letter_is_one_escaped_line() -> None:
    message = FakeMessage(
        b'{"a": 1,\n"evil": "\x1b[31m"} \xff', _headers("t1", "parse", 'bad "json"\n')
    )
    line = dead_letter(message).line()  # type: ignore[arg-type]
    assert "\n" not in line
    assert "\x1b" not in line
    assert line.startswith("in.dlq/2@7 src=in/1@42 tenant=t1 kind=parse attempt=3 ")
    assert 'reason="bad \\"json\\"\\n"' in line
    assert "\\x1b" in line
    assert "\\\\xff" in line


def test_long_values_are_cut_and_counts_add_up() -> None:
    letters = [
        dead_letter(FakeMessage(b"x" * 500, _headers(t, k, "r"), i))  # type: ignore[arg-type]
        for i, (t, k) in enumerate([("a", "parse"), ("a", "schema"), ("b", "parse")])
    ]
    assert letters[0].line().endswith('..."')
    assert len(letters[0].line()) < 250
    assert count_by(letters, "tenant") == {"a": 2, "b": 1}
    assert count_by(letters, "kind") == {"parse": 2, "schema": 1}
