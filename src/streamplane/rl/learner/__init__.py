"""The learner: Double DQN in JAX, run on Slurm as ``python -m streamplane.rl.learner.trainer``.

:mod:`.trainer` is the program (flags, one run end to end), :mod:`.config` its flags as
a record, :mod:`.dataset` the buffer read into arrays, :mod:`.dqn` the fit (JAX, optax).
"""
