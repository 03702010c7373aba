"""Versioned policy checkpoints on disk.

Layout: ``<root>/<line>/v000001/{params.npz, checkpoint.json, metrics.json}``. A *line* is
a skill name, or ``all`` for policies trained on every skill. A checkpoint directory is
built under a temporary name and renamed into place, so a reader sees either all of a
version or none of it; a name already taken (two trainers finishing at once) moves the
writer on to the next version. The newest version is the largest number.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from streamplane.rl.exceptions import CheckpointError
from streamplane.rl.policy import Layers, QPolicy
from streamplane.rl.transitions import check_skill

ALL_SKILLS = "all"
PARAMS_FILE = "params.npz"
META_FILE = "checkpoint.json"
METRICS_FILE = "metrics.json"

_VERSION_DIR = re.compile(r"^v(\d{6,})$")


@dataclass(frozen=True)
class Checkpoint:
    """One saved policy version: where it is and what it says about itself."""

    line: str
    version: int
    path: Path
    meta: dict[str, Any]

    @property
    def metrics_path(self) -> Path:
        """The metrics JSON written with the checkpoint."""
        return self.path / METRICS_FILE

    def metrics(self) -> dict[str, Any]:
        """The training metrics (loss, evaluation mean return, steps, wall time)."""
        return _read_json(self.metrics_path)

    def layers(self) -> Layers:
        """The Q-network's (weights, bias) pairs, input to output."""
        try:
            with np.load(self.path / PARAMS_FILE) as data:
                count = len(data.files) // 2
                return [
                    (data[f"w{i}"].astype(np.float32), data[f"b{i}"].astype(np.float32))
                    for i in range(count)
                ]
        except (OSError, KeyError, ValueError) as exc:
            raise CheckpointError(f"cannot read {self.path / PARAMS_FILE}: {exc}") from exc

    def policy(self, epsilon: float = 0.0) -> QPolicy:
        """An epsilon-greedy policy over this checkpoint's network."""
        return QPolicy(self.layers(), self.version, epsilon)


class CheckpointStore:
    """The checkpoints under one root folder (``RL_POLICY_DIR``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def versions(self, line: str) -> list[int]:
        """The versions of ``line``, oldest first (empty when there are none)."""
        folder = self.root / check_skill(line)
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for n in names if (m := _VERSION_DIR.match(n)))

    def latest(self, line: str) -> Checkpoint | None:
        """The newest checkpoint of ``line``, or None."""
        versions = self.versions(line)
        return self.get(line, versions[-1]) if versions else None

    def get(self, line: str, version: int) -> Checkpoint:
        """Checkpoint ``version`` of ``line``.

        Raises:
            CheckpointError: there is no such version.
        """
        path = self.root / check_skill(line) / _dirname(version)
        if not (path / META_FILE).is_file():
            raise CheckpointError(f"no checkpoint v{version} in line {line!r} under {self.root}")
        return Checkpoint(line, version, path, _read_json(path / META_FILE))

    def resolve(self, skill: str, version: int | str) -> Checkpoint | None:
        """The checkpoint a rollout of ``skill`` asks for.

        ``"latest"``: the newest of the skill's own line, else of the ``all`` line, else
        None (act randomly). A number: that version of the skill's line, else of ``all``.

        Raises:
            CheckpointError: a numbered version exists in neither line.
        """
        lines = [skill] if skill == ALL_SKILLS else [skill, ALL_SKILLS]
        if version == "latest":
            for line in lines:
                found = self.latest(line)
                if found is not None:
                    return found
            return None
        for line in lines:
            try:
                return self.get(line, int(version))
            except CheckpointError:
                continue
        raise CheckpointError(f"no checkpoint v{version} for skill {skill!r} under {self.root}")

    def save(
        self, line: str, layers: Layers, meta: dict[str, Any], metrics: dict[str, Any]
    ) -> Checkpoint:
        """Write a new version of ``line`` and return it (its number is one past the newest).

        ``metrics`` gets ``version`` added; both JSON files carry the line and version.
        """
        folder = self.root / check_skill(line)
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=folder))
        try:
            arrays: dict[str, np.ndarray[Any, Any]] = {}
            for i, (w, b) in enumerate(layers):
                arrays[f"w{i}"] = np.asarray(w, dtype=np.float32)
                arrays[f"b{i}"] = np.asarray(b, dtype=np.float32)
            with (staging / PARAMS_FILE).open("wb") as out:
                np.savez(out, **arrays)  # type: ignore[arg-type]
                _sync(out.fileno())
            version = (self.versions(line) or [0])[-1] + 1
            while True:
                stamped_meta = {**meta, "line": line, "version": version}
                stamped_metrics = {**metrics, "line": line, "version": version}
                _write_json(staging / META_FILE, stamped_meta)
                _write_json(staging / METRICS_FILE, stamped_metrics)
                target = folder / _dirname(version)
                try:
                    # rename() of a folder onto an existing non-empty one fails: the
                    # version is taken, so try the next one.
                    os.rename(staging, target)
                except OSError:
                    if not target.exists():
                        raise
                    version += 1
                    continue
                _fsync_dir(folder)
                return Checkpoint(line, version, target, stamped_meta)
        except OSError as exc:
            raise CheckpointError(f"cannot write a checkpoint under {folder}: {exc}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _dirname(version: int) -> str:
    return f"v{version:06d}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a JSON object")
    return data


def _write_json(path: Path, data: dict[str, Any]) -> None:
    with path.open("w") as out:
        json.dump(data, out, indent=2, sort_keys=True)
        out.flush()
        _sync(out.fileno())


def _sync(fd: int) -> None:
    os.fsync(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
