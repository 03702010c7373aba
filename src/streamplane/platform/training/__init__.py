"""Reinforcement learning on the data plane: env runner, replay buffer, Slurm training.

The loop: rollout requests on INPUT_TOPIC -> :mod:`.env_runner` (on workers) plays them
in Gymnasium -> transitions on RL_RESULTS_TOPIC -> :mod:`.buffer_service` writes Parquet
shards listed by a manifest (:mod:`.buffer`, :mod:`.manifest`) -> :mod:`.runs` submits
:mod:`.trainer` to Slurm (:mod:`.slurm`) -> a new checkpoint (:mod:`.checkpoints`) ->
env runners act with it. :mod:`.api` is the HTTP face, :mod:`.metrics` the Prometheus one.

Nothing is imported here, so that importing a submodule stays cheap: JAX is imported by
the trainer only, Gymnasium by the rollouts only.
"""
