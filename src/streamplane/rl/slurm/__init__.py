"""Training runs on Slurm: jobs, the client of Slurm's commands, runs and their monitor.

:mod:`.jobs` holds jobs as data, :mod:`.client` runs sbatch/squeue/scontrol/sacct,
:mod:`.runs` submits the trainer and follows its tasks, :mod:`.monitor` keeps their
metrics current, :mod:`.schema` is what the training API receives and answers.
"""
