"""Jar resolution without the tools: a missing or old java, a missing maven."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamplane.dev.broker import EmbeddedBroker, ensure_jars, find_java
from streamplane.platform.kafka.exceptions import BrokerToolMissing


def _fake_tool(folder: Path, name: str, script: str) -> None:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)


def test_missing_java_names_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrokerToolMissing) as caught:
        find_java()
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("java not found: install a JDK 17+")
    assert caught.value.tool == "java"
    # start() checks before touching the data dir.
    with pytest.raises(BrokerToolMissing):
        EmbeddedBroker(tmp_path / "data", port=0).start()
    assert not (tmp_path / "data").exists()


def test_old_java_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_tool(tmp_path / "bin", "java", "echo 'openjdk version \"11.0.22\" 2024-01-16' >&2")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(BrokerToolMissing, match=r"java 11 .* too old .* JDK 17\+"):
        find_java()


def test_missing_maven_names_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_tool(tmp_path / "bin", "java", "echo 'openjdk version \"17.0.15\" 2025-04-15' >&2")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    with pytest.raises(BrokerToolMissing) as caught:
        ensure_jars(cache_dir=tmp_path / "cache")
    assert caught.value.tool == "mvn"
    assert "\n" not in str(caught.value)
    assert "apt-get install maven" in str(caught.value)
    assert not any((tmp_path / "cache").rglob("*.jar"))
