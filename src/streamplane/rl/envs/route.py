"""The route that makes a worker the env runner too (entry point ``streamplane.routes``).

With RL_RESULTS_TOPIC set, the records of a task that are rollout requests (JSON with
``"kind": "rl.rollout"``) go to the :class:`~streamplane.rl.envs.env_runner.RolloutProcessor`,
all others to the processor WORKER_PROCESSOR names; both write through the same emit, so
the task is acked once every write of both is durable. Without it the worker is left as
it is, and nothing of RL is imported.
"""

from __future__ import annotations

from streamplane.config import Settings
from streamplane.platform.worker.processor import Processor


def rollout_route(settings: Settings, processor: Processor) -> Processor:
    """``processor``, with rollout requests handed to the env runner when RL is on."""
    if not settings.rl.rl_results_topic:
        return processor
    # Imported only when used: the env runner brings numpy, pydantic models, checkpoints.
    from streamplane.platform.worker.routing import RoutingProcessor
    from streamplane.rl.envs.env_runner import RolloutProcessor
    from streamplane.rl.transitions import is_rollout

    return RoutingProcessor(processor, RolloutProcessor(settings), is_rollout)
