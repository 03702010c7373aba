"""Definitions holding the RL pieces, for the end-to-end test's Dagster webserver."""

from dagster import Definitions

from streamplane.assets.rl import RL_ASSET_CHECKS, RL_ASSETS, RL_JOBS, rl_resources_from_environment
from streamplane.resources import resources_from_environment
from streamplane.sensors.rl import RL_SCHEDULES, RL_SENSORS

defs = Definitions(
    assets=RL_ASSETS,
    asset_checks=RL_ASSET_CHECKS,
    jobs=RL_JOBS,
    sensors=RL_SENSORS,
    schedules=RL_SCHEDULES,
    resources={**resources_from_environment(), **rl_resources_from_environment()},
)
