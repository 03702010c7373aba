"""Dead-letter and output headers: an input's own sp-* headers never pass as ours."""

from __future__ import annotations

import orjson

from streamplane.config import Settings
from streamplane.platform import headers as h
from streamplane.platform.records import Records
from streamplane.platform.worker.features_processor import FeaturesProcessor
from streamplane.platform.worker.processor import WorkItem

SPOOFED: h.HeaderList = [
    (h.SRC_OFFSET, b"999999"),
    ("SP-Src-Topic", b"elsewhere"),
    (h.ERROR_KIND, b"none"),
    ("trace-id", b"abc"),
]


def _names(headers: h.HeaderList) -> list[str]:
    return [name for name, _ in headers]


def test_dead_letter_headers_rename_incoming_sp_headers() -> None:
    source = h.source_headers("in", 2, 41, "t1", 3)
    got = h.dead_letter_headers(list(SPOOFED), source, "parse", "bad")
    names = _names(got)
    sp = [n for n in names if n.lower().startswith("sp-")]
    assert sorted(sp) == sorted([*_names(source), h.ERROR, h.ERROR_KIND]), got
    assert dict(got)[h.SRC_OFFSET] == b"41"
    assert dict(got)[h.ERROR_KIND] == b"parse"
    # Kept for whoever investigates, under a name that is not ours.
    assert dict(got)["x-orig-sp-src-offset"] == b"999999"
    assert dict(got)["x-orig-SP-Src-Topic"] == b"elsewhere"
    assert dict(got)["trace-id"] == b"abc"


def test_feature_outputs_and_dead_letters_carry_one_source() -> None:
    valid = orjson.dumps(
        {
            "event_id": "e1",
            "tenant": "t1",
            "user_id": "u1",
            "event_type": "click",
            "value": 1.5,
            "ts": 1_700_000_000_000,
        }
    )
    records = Records(
        "in", 0, [10, 11], [0, 0], [b"k", b"k"], [valid, b"not json"], {0: SPOOFED, 1: SPOOFED}
    )
    written: list[tuple[str, h.HeaderList]] = []
    settings = Settings()
    processor = FeaturesProcessor(settings)
    processor.process(
        WorkItem("task.1", "t1", 1, records), lambda t, k, v, hs: written.append((t, hs))
    )
    assert [t for t, _ in written] == [settings.kafka.output_topic, settings.kafka.dlq_topic]
    for (_, headers), offset in zip(written, (b"10", b"11"), strict=True):
        offsets = [v for n, v in headers if n.lower() == h.SRC_OFFSET]
        assert offsets == [offset], headers
        assert [n for n in _names(headers) if n.lower() == "sp-src-topic"] == [h.SRC_TOPIC]
