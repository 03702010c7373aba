"""The long-running jobs: ``supervisor_job``, ``worker_job`` and ``gpu_worker_job``.

Each job's single op starts the runtime's own command (``streamplane supervisor`` or
``streamplane worker``) as a child process, exactly as it runs outside Dagster, and
watches it:

- While it runs, the op writes a heartbeat tag on the run, so the sensors can tell a
  run whose run worker died (killed process, lost node) from a live one and replace it.
- Run termination (UI, GraphQL, a Kubernetes pod deletion) interrupts the op, which
  sends SIGTERM to the child: the runtime drains (no new work, in-flight work finishes or
  is requeued, final commit) and exits 0; the run then ends as canceled.
- A child that exits non-zero (killed, crashed) fails the run.
- The child asks the kernel for SIGTERM when the op's process dies, so it never outlives
  its run worker.

- Every ``PROGRESS_INTERVAL_S`` the op logs a progress line when something moved
  (records done and rate, credit in use, errors, dead letters; see
  :mod:`streamplane.progress`), so a run's event log shows it working.

On Kubernetes (``KUBERNETES_SERVICE_HOST`` set, as in every pod) the ``dagster-k8s/config``
tags size each job's pod; the GPU worker requests one ``nvidia.com/gpu``. Local runs do
not carry them: they would mean nothing there and clutter the runs list.
"""

import json
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

from dagster import (
    AssetSelection,
    Config,
    DagsterExecutionInterruptedError,
    Failure,
    OpExecutionContext,
    define_asset_job,
    in_process_executor,
    job,
    op,
)
from pydantic import Field

from streamplane import processes
from streamplane.config import FaceSettings, WorkerSettings, field_like
from streamplane.progress import Progress, supervisor_progress, worker_progress
from streamplane.resources import StreamplaneResource

__all__ = [
    "HEARTBEAT_TAG",
    "K8S_CONFIG_TAG",
    "ROLE_TAG",
    "SLOT_TAG",
    "WORKER_JOBS",
    "GpuWorkerConfig",
    "SupervisorConfig",
    "WorkerConfig",
    "feature_snapshot_job",
    "gpu_worker_job",
    "k8s_run_tags",
    "run_process",
    "supervisor_job",
    "worker_job",
]

ROLE_TAG = "streamplane/role"
"""Run tag: ``supervisor`` or ``worker``; the run queue's concurrency limits key on it."""
SLOT_TAG = "streamplane/slot"
"""Run tag: which supervisor slot a supervisor run fills."""
HEARTBEAT_TAG = "streamplane/heartbeat"
"""Run tag: epoch seconds of the op's last heartbeat."""
K8S_CONFIG_TAG = "dagster-k8s/config"

# Heartbeats every 5 s keep a 60 s timeout twelve beats wide, so a loaded machine that
# delays a few is never mistaken for a dead run; a run-tag write costs one row update.
HEARTBEAT_INTERVAL_S = 5.0
# A progress line at most every 10 s: a few hundred lines for an hour-long run, enough
# to follow it, far from flooding the event log (and none while nothing moves).
PROGRESS_INTERVAL_S = 10.0
# How often the op looks at its child; a child's exit shows in the run within this.
POLL_INTERVAL_S = 0.5
# After the drain timeout, this much more for the final commit and exit before SIGKILL.
STOP_MARGIN_S = 15.0


class SupervisorConfig(Config):
    """Run config of ``supervisor_job``."""

    slot: int = Field(
        default=0, ge=0, description="Supervisor slot; with a port stride it picks the ports."
    )


class WorkerConfig(Config):
    """Run config of ``worker_job`` and ``gpu_worker_job``."""

    max_inflight: int = field_like(WorkerSettings, "max_inflight")
    engine: Literal["polars", "cudf"] = field_like(
        WorkerSettings, "worker_engine", "Feature engine: polars (CPU) or cudf (GPU)."
    )
    idle_exit_seconds: float = field_like(
        FaceSettings, "fleet_idle_exit_s", "Exit with success after this long without work."
    )


class GpuWorkerConfig(WorkerConfig):
    """Run config of ``gpu_worker_job``: as ``WorkerConfig``, cuDF by default."""

    engine: Literal["polars", "cudf"] = Field(
        default="cudf", description="Feature engine: cudf (GPU) or polars (CPU)."
    )


# ------------------------------------------------------------------------ child process


def _spawn(command: str, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start ``streamplane <command>``; its output goes to the run's captured logs.

    The child gets SIGTERM from the kernel when the op's process dies (so it drains).
    """
    return processes.spawn(processes.streamplane_argv(command), env=env, die_with_parent=True)


def _watch(
    proc: subprocess.Popen[bytes],
    heartbeat: Callable[[], None],
    clock: Callable[[], float] = time.monotonic,
    progress: Callable[[], None] | None = None,
) -> int:
    """Wait for ``proc`` to exit, calling ``heartbeat`` every HEARTBEAT_INTERVAL_S.

    ``progress``, if given, is called every PROGRESS_INTERVAL_S (first after one interval).
    """
    next_beat = clock()
    next_progress = clock() + PROGRESS_INTERVAL_S
    while True:
        if clock() >= next_beat:
            heartbeat()
            next_beat = clock() + HEARTBEAT_INTERVAL_S
        if progress is not None and clock() >= next_progress:
            progress()
            next_progress = clock() + PROGRESS_INTERVAL_S
        status = processes.wait_for(proc, POLL_INTERVAL_S)
        if status is not None:
            return status


def _stop(proc: subprocess.Popen[bytes], timeout_s: float) -> int:
    """SIGTERM ``proc`` and wait for its drain; SIGKILL after ``timeout_s``.

    Further interrupts (a second terminate, SIGTERM to the run worker) do not cut the
    drain short: they are absorbed until the child exits or the timeout passes.
    """
    return processes.stop(proc, timeout_s, absorb=(DagsterExecutionInterruptedError,))


def run_process(
    context: OpExecutionContext,
    command: str,
    env: Mapping[str, str],
    drain_timeout_s: float,
    progress: Progress | None = None,
) -> None:
    """Run ``streamplane <command>`` for this op until it exits or the run is terminated.

    Raises:
        Failure: the process exited with a non-zero status.
        DagsterExecutionInterruptedError: the run was terminated; the process has drained.
    """
    proc = _spawn(command, env)
    context.log.info(f"started streamplane {command} (pid {proc.pid})")

    def heartbeat() -> None:
        context.instance.add_run_tags(context.run_id, {HEARTBEAT_TAG: f"{time.time():.0f}"})

    def log_progress() -> None:
        line = progress.line() if progress is not None else None
        if line is not None:
            context.log.info(line)

    try:
        status = _watch(proc, heartbeat, progress=log_progress)
    except DagsterExecutionInterruptedError:
        context.log.info(f"run terminated: draining streamplane {command} (pid {proc.pid})")
        status = _stop(proc, drain_timeout_s + STOP_MARGIN_S)
        context.log.info(f"streamplane {command} drained and exited with status {status}")
        raise
    finally:
        processes.kill(proc)  # any other error: never leave the child behind
    if status != 0:
        raise Failure(
            description=f"streamplane {command} (pid {proc.pid}) exited with status {status}",
            metadata={"exit_status": status},
        )
    context.log.info(f"streamplane {command} exited cleanly")


# ---------------------------------------------------------------------------------- ops


@op(description="Run a streamplane supervisor until the run is terminated (which drains it).")
def run_supervisor(
    context: OpExecutionContext, config: SupervisorConfig, streamplane: StreamplaneResource
) -> None:
    """Start ``streamplane supervisor`` in this run's slot and watch it."""
    streamplane.settings()  # validate here: a bad value fails the run naming the variable
    env = {**_inherited_env(), **streamplane.supervisor_env(config.slot)}
    progress = supervisor_progress(env["SUPERVISOR_HTTP_LISTEN"])
    run_process(context, "supervisor", env, streamplane.drain_timeout_s, progress)


@op(description="Run a streamplane worker until it has been idle for idle_exit_seconds.")
def run_worker(
    context: OpExecutionContext, config: WorkerConfig, streamplane: StreamplaneResource
) -> None:
    """Start ``streamplane worker`` with this run's config and watch it."""
    _start_worker(context, config, streamplane)


@op(description="Run a streamplane worker on a GPU until it has been idle.")
def run_gpu_worker(
    context: OpExecutionContext, config: GpuWorkerConfig, streamplane: StreamplaneResource
) -> None:
    """Start ``streamplane worker`` (cuDF unless the config says otherwise) and watch it."""
    _start_worker(context, config, streamplane)


def _start_worker(
    context: OpExecutionContext, config: WorkerConfig, streamplane: StreamplaneResource
) -> None:
    env = {
        **_inherited_env(),
        **streamplane.worker_env(),
        "MAX_INFLIGHT": str(config.max_inflight),
        "WORKER_ENGINE": config.engine,
        "WORKER_IDLE_EXIT_S": str(config.idle_exit_seconds),
        "WORKER_ID": f"dagster-{context.run_id[:8]}",
    }
    # Its own /metrics (dead letters by tenant and kind): where a deployment sets a port
    # (a pod, for its scraper), that one; else a free loopback port for this run only.
    env.setdefault("WORKER_METRICS_LISTEN", f"127.0.0.1:{processes.free_port()}")
    context.log.info(f"worker metrics: http://{env['WORKER_METRICS_LISTEN']}/metrics")
    progress = worker_progress(
        env["WORKER_ID"], streamplane.supervisor_http_listen, env["WORKER_METRICS_LISTEN"]
    )
    run_process(context, "worker", env, streamplane.drain_timeout_s, progress)


def _inherited_env() -> dict[str, str]:
    """The op's own environment (a pod's secrets and config maps come this way)."""
    return dict(os.environ)


# ---------------------------------------------------------------------------------- jobs


def k8s_config(
    cpu: str,
    memory: str,
    limits: Mapping[str, str] | None = None,
    container: Mapping[str, Any] | None = None,
    pod_labels: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A ``dagster-k8s/config`` value: the run pod's resources, labels and stop grace.

    The grace period (60 s) exceeds the runtime's drain timeout (30 s by default), or
    Kubernetes would kill a terminated run's pod before it has drained.
    """
    config: dict[str, Any] = {
        "container_config": {
            "resources": {
                "requests": {"cpu": cpu, "memory": memory},
                "limits": {"memory": memory, **(limits or {})},
            },
            **(container or {}),
        },
        "pod_spec_config": {"termination_grace_period_seconds": 60},
    }
    if pod_labels:
        config["pod_template_spec_metadata"] = {"labels": dict(pod_labels)}
    return config


def on_kubernetes() -> bool:
    """Whether this code runs in a Kubernetes pod (the kubelet sets this in every one)."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def k8s_run_tags(role_config: Mapping[str, Any]) -> dict[str, str]:
    """The ``dagster-k8s/config`` run tag of a pod config."""
    return {K8S_CONFIG_TAG: json.dumps(role_config, sort_keys=True)}


def _tags(role: str, k8s: Mapping[str, Any]) -> dict[str, str]:
    return {ROLE_TAG: role, **(k8s_run_tags(k8s) if on_kubernetes() else {})}


# Supervisor pods: the streamplane-supervisor Service (docker/dagster/k8s) selects them
# by label, and routes workers only to one that is ready (holds partitions, serves gRPC).
SUPERVISOR_K8S = k8s_config(
    "1",
    "2Gi",
    container={
        "ports": [
            {"name": "grpc", "container_port": 7000},
            {"name": "http", "container_port": 8080},
        ],
        "readiness_probe": {
            "http_get": {"path": "/readyz", "port": "http"},
            "period_seconds": 5,
        },
    },
    pod_labels={"app.kubernetes.io/name": "streamplane-supervisor"},
)
WORKER_K8S = k8s_config("2", "4Gi")
GPU_WORKER_K8S = k8s_config("2", "8Gi", limits={"nvidia.com/gpu": "1"})
GPU_WORKER_K8S["pod_spec_config"]["tolerations"] = [
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
]


@job(
    description="A streamplane supervisor: consumes INPUT_TOPIC and hands tasks to workers.",
    executor_def=in_process_executor,
    tags=_tags("supervisor", SUPERVISOR_K8S),
)
def supervisor_job() -> None:
    """One supervisor, alive until terminated."""
    run_supervisor()


@job(
    description="A streamplane worker on CPU (polars); exits with success when idle.",
    executor_def=in_process_executor,
    tags=_tags("worker", WORKER_K8S),
)
def worker_job() -> None:
    """One CPU worker."""
    run_worker()


@job(
    description="A streamplane worker on one GPU (cuDF); exits with success when idle.",
    executor_def=in_process_executor,
    tags=_tags("worker", GPU_WORKER_K8S),
)
def gpu_worker_job() -> None:
    """One GPU worker (requests ``nvidia.com/gpu: 1`` on Kubernetes).

    Its op is named ``run_worker`` here too, so both worker jobs take the same run config.
    """
    run_gpu_worker.alias("run_worker")()


WORKER_JOBS = {"polars": worker_job, "cudf": gpu_worker_job}
"""The worker job for each engine."""

feature_snapshot_job = define_asset_job(
    "feature_snapshot_job",
    selection=AssetSelection.assets("feature_snapshot")
    | AssetSelection.checks_for_assets("feature_snapshot", "feature_events"),
    description="Materialize feature_snapshot and run the feature data-quality checks.",
    tags={ROLE_TAG: "snapshot"},
)
