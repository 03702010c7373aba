"""The replay buffer's transitions as the arrays the learner trains on.

Reads the complete shards through the buffer's manifest, keeps one environment (and
optionally one skill), and drops the repeats a redelivered rollout request leaves behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from streamplane.rl.buffer.manifest import load_transitions
from streamplane.rl.exceptions import TrainingError
from streamplane.rl.learner.config import TrainConfig


@dataclass(frozen=True)
class Dataset:
    """The buffer's transitions as arrays."""

    obs: np.ndarray[Any, np.dtype[np.float32]]
    actions: np.ndarray[Any, np.dtype[np.int32]]
    rewards: np.ndarray[Any, np.dtype[np.float32]]
    next_obs: np.ndarray[Any, np.dtype[np.float32]]
    terminated: np.ndarray[Any, np.dtype[np.float32]]
    episodes: int

    def __len__(self) -> int:
        return int(self.actions.shape[0])


def load_dataset(config: TrainConfig) -> Dataset:
    """Read the buffer's transitions of ``config.env`` (and skill) into arrays.

    Raises:
        TrainingError: the buffer holds no such transitions.
    """
    skills = [config.skill] if config.skill is not None else None
    table = load_transitions(config.buffer, skills)
    table = _unique_steps(table.filter(_equals(table.column("env"), config.env)))
    n = table.num_rows
    if n == 0:
        what = f"skill {config.skill!r}" if config.skill else "any skill"
        raise TrainingError(
            f"the buffer at {config.buffer} has no {config.env} transitions of {what}"
        )
    obs = _matrix(table.column("obs"), n)
    next_obs = _matrix(table.column("next_obs"), n)
    return Dataset(
        obs=obs,
        actions=table.column("action").to_numpy().astype(np.int32),
        rewards=table.column("reward").to_numpy().astype(np.float32),
        next_obs=next_obs,
        terminated=table.column("terminated").to_numpy(zero_copy_only=False).astype(np.float32),
        episodes=len(set(table.column("episode_id").to_pylist())),
    )


def _unique_steps(table: Any) -> Any:
    """Keep the first row of each (episode_id, step).

    A redelivered rollout request replays its episodes under the same ids, and the buffer
    keeps what Kafka holds (at-least-once), so repeats are dropped here.
    """
    import pyarrow as pa

    indexed = table.append_column("_row", pa.array(np.arange(table.num_rows)))
    first = indexed.group_by(["episode_id", "step"], use_threads=False).aggregate([("_row", "min")])
    return table.take(np.sort(first.column("_row_min").to_numpy()))


def _equals(column: Any, value: str) -> Any:
    import pyarrow.compute as pc

    return pc.equal(column, value)


def _matrix(column: Any, rows: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    flat = np.asarray(column.combine_chunks().flatten(), dtype=np.float32)
    return flat.reshape(rows, -1)
