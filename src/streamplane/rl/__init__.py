"""Reinforcement learning, an application of the plane: env runner, replay buffer, learner.

The loop: rollout requests on INPUT_TOPIC -> :mod:`.envs` (a processor on the plane's
workers, found through the ``streamplane.routes`` entry point) plays them in Gymnasium
-> transitions on RL_RESULTS_TOPIC -> :mod:`.buffer` writes Parquet shards listed by a
manifest -> :mod:`.slurm` submits :mod:`.learner`'s trainer to Slurm -> a new checkpoint
(:mod:`.checkpoints`) -> env runners act with it. :mod:`.api` is the HTTP face (served
by a supervisor through :class:`~streamplane.rl.host.RLExtension`), :mod:`.metrics` the
Prometheus one; :mod:`.transitions` and :mod:`.policy` are shared by every subsystem.

The plane never imports this package. Nothing is imported here, so that importing a
submodule stays cheap: JAX is imported by the trainer only, Gymnasium by the rollouts only.
"""
