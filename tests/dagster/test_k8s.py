"""Kubernetes without a cluster: each job's Job manifest, built by dagster-k8s itself.

The K8sRunLauncher is configured from ``docker/dagster/dagster.yaml`` (only the cluster
connection is swapped for a stub kubeconfig) and launches a run of every long-running
job; its Kubernetes API client is a recorder, so the test reads the exact ``V1Job`` that
dagster-k8s's own builders produced: image, command, env, resources, labels, probes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from dagster import DagsterInstance, DagsterRun
from dagster._cli.api import ExecuteRunArgs
from dagster._config import process_config
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.launcher import LaunchRunContext
from dagster._serdes import deserialize_value
from dagster_k8s import K8sRunLauncher
from kubernetes.client import V1Container, V1Job

from streamplane.jobs import (
    GPU_WORKER_K8S,
    K8S_CONFIG_TAG,
    ROLE_TAG,
    SUPERVISOR_K8S,
    WORKER_K8S,
    gpu_worker_job,
    k8s_run_tags,
    supervisor_job,
    worker_job,
)
from tests.support.procs import REPO_ROOT

INSTANCE_YAML = REPO_ROOT / "docker/dagster/dagster.yaml"
IMAGE = "registry.example.com/streamplane:1.2.3"

PG_ENV = {
    "DAGSTER_PG_HOST": "postgresql.streaming",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_DB": "dagster",
}

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: stub, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: stub, user: {token: stub}}]
contexts: [{name: stub, context: {cluster: stub, user: stub}}]
current-context: stub
"""


@pytest.fixture
def launcher(
    tmp_path: Path, instance: DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> tuple[K8sRunLauncher, mock.Mock]:
    """The deployment's run launcher, recording the Jobs it would create."""
    monkeypatch.setenv("STREAMPLANE_IMAGE", IMAGE)
    monkeypatch.setenv("DAGSTER_K8S_NAMESPACE", "streaming")
    # The daemon's own environment, passed through to run pods (env_vars).
    for name, value in PG_ENV.items():
        monkeypatch.setenv(name, value)
    raw = yaml.safe_load(INSTANCE_YAML.read_text())["run_launcher"]
    assert raw["module"] == "dagster_k8s"
    assert raw["class"] == "K8sRunLauncher"
    processed = process_config(K8sRunLauncher.config_type(), raw["config"])
    assert processed.success, processed.errors
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    batch = mock.Mock(name="BatchV1Api")
    config: dict[str, Any] = {
        **processed.value,  # type: ignore[dict-item]
        "load_incluster_config": False,
        "kubeconfig_file": str(kubeconfig),
    }
    run_launcher = K8sRunLauncher(
        **config, k8s_client_batch_api=batch, k8s_client_core_api=mock.Mock()
    )
    run_launcher.register_instance(instance)
    return run_launcher, batch


def launch(
    launcher: tuple[K8sRunLauncher, mock.Mock],
    instance: DagsterInstance,
    job_name: str,
    job_tags: dict[str, str],
    run_tags: dict[str, str] | None = None,
) -> V1Job:
    """Launch a run of ``job_name`` and return the Job manifest sent to Kubernetes."""
    run_launcher, batch = launcher
    repository = ReconstructableRepository.for_module(
        "streamplane.definitions", "defs", working_directory=str(REPO_ROOT)
    )
    origin = repository.get_python_origin().get_job_origin(job_name)
    run = instance.add_run(
        DagsterRun(
            job_name=job_name,
            run_id=f"{job_name.replace('_', '-')}-0123456789",
            tags={**job_tags, **(run_tags or {})},
            job_code_origin=origin,
        )
    )
    batch.reset_mock()
    run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    call = batch.create_namespaced_job.call_args
    assert call.kwargs["namespace"] == "streaming"
    job: V1Job = call.kwargs["body"]
    return job


def container(job: V1Job) -> V1Container:
    (only,) = job.spec.template.spec.containers
    return only


def env_names(c: V1Container) -> set[str]:
    return {e.name for e in c.env}


def common_checks(job: V1Job, job_name: str) -> V1Container:
    c = container(job)
    assert c.image == IMAGE
    assert c.command == ["/usr/bin/env"]
    assert c.args[:3] == ["dagster", "api", "execute_run"]
    execute = deserialize_value(c.args[3], ExecuteRunArgs)
    assert execute.job_origin.job_name == job_name
    assert execute.run_id == f"{job_name.replace('_', '-')}-0123456789"
    assert {"DAGSTER_HOME", "DAGSTER_PG_PASSWORD", "DAGSTER_RUN_JOB_NAME"} <= env_names(c)
    passed = {e.name: e.value for e in c.env if e.name in PG_ENV}
    assert passed == PG_ENV
    password = next(e for e in c.env if e.name == "DAGSTER_PG_PASSWORD")
    assert password.value_from.secret_key_ref.name == "streamplane-dagster-postgresql"
    sources = {
        (s.config_map_ref and s.config_map_ref.name) or s.secret_ref.name for s in c.env_from
    }
    assert sources == {"streamplane-settings", "streamplane-kafka-credentials"}
    spec = job.spec.template.spec
    assert spec.service_account_name == "streamplane-dagster"
    assert spec.termination_grace_period_seconds == 60
    assert job.metadata.labels["app.kubernetes.io/part-of"] == "streamplane"
    return c


def test_supervisor_job_manifest(
    launcher: tuple[K8sRunLauncher, mock.Mock], instance: DagsterInstance
) -> None:
    job = launch(
        launcher,
        instance,
        "supervisor_job",
        {**supervisor_job.tags, **k8s_run_tags(SUPERVISOR_K8S)},
    )
    c = common_checks(job, "supervisor_job")
    assert c.resources.requests == {"cpu": "1", "memory": "2Gi"}
    assert c.resources.limits == {"memory": "2Gi"}
    assert {(p.name, p.container_port) for p in c.ports} == {("grpc", 7000), ("http", 8080)}
    assert c.readiness_probe.http_get.path == "/readyz"
    labels = job.spec.template.metadata.labels
    assert labels["app.kubernetes.io/name"] == "streamplane-supervisor"


def test_worker_job_manifest(
    launcher: tuple[K8sRunLauncher, mock.Mock], instance: DagsterInstance
) -> None:
    job = launch(launcher, instance, "worker_job", {**worker_job.tags, **k8s_run_tags(WORKER_K8S)})
    c = common_checks(job, "worker_job")
    assert c.resources.requests == {"cpu": "2", "memory": "4Gi"}
    assert "nvidia.com/gpu" not in (c.resources.limits or {})


def test_gpu_worker_job_requests_one_gpu(
    launcher: tuple[K8sRunLauncher, mock.Mock], instance: DagsterInstance
) -> None:
    job = launch(
        launcher,
        instance,
        "gpu_worker_job",
        {**gpu_worker_job.tags, **k8s_run_tags(GPU_WORKER_K8S)},
    )
    c = common_checks(job, "gpu_worker_job")
    assert c.resources.limits["nvidia.com/gpu"] == "1"
    tolerations = job.spec.template.spec.tolerations
    assert [(t.key, t.effect) for t in tolerations] == [("nvidia.com/gpu", "NoSchedule")]


def test_job_tags_carry_role_and_pod_config() -> None:
    for job, role, pod in (
        (supervisor_job, "supervisor", SUPERVISOR_K8S),
        (worker_job, "worker", WORKER_K8S),
        (gpu_worker_job, "worker", GPU_WORKER_K8S),
    ):
        assert job.tags[ROLE_TAG] == role
        config = json.loads(k8s_run_tags(pod)[K8S_CONFIG_TAG])
        assert config["pod_spec_config"]["termination_grace_period_seconds"] == 60


def test_local_runs_carry_no_pod_config() -> None:
    """Outside a pod the tag would only clutter the runs list; in one, the jobs carry it."""
    code = (
        "import json, sys; from streamplane.jobs import worker_job, K8S_CONFIG_TAG; "
        "print(json.dumps(K8S_CONFIG_TAG in worker_job.tags))"
    )
    env = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    local = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    pod = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "KUBERNETES_SERVICE_HOST": "10.0.0.1"},
        capture_output=True,
        text=True,
    )
    assert (local.stdout.strip(), pod.stdout.strip()) == ("false", "true"), (
        local.stderr + pod.stderr
    )
