"""The RL fixtures (Slurm, RL settings in a temporary folder) for the RL integration tests."""

from tests.rl_support.fixtures import (
    instance,
    pytest_configure,
    rl_dirs,
    slurm_cluster,
    training_settings,
)

__all__ = ["instance", "pytest_configure", "rl_dirs", "slurm_cluster", "training_settings"]
