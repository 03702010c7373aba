"""The env runner: rollout requests played in Gymnasium on the plane's workers.

:mod:`.env_runner` is the worker processor, :mod:`.rollouts` the Gymnasium side (imported
on first use only), :mod:`.route` the entry point that hands a worker's rollout
requests to the env runner.
"""
