"""The committed prefect.yaml is what `dunning deploy --write-prefect-yaml` makes of schedules."""

from __future__ import annotations

from pathlib import Path

import yaml

from dunning.config import Schedules, load_file
from dunning.ops.deploy import PREFECT_YAML, prefect_yaml
from dunning.project import Project
from flows.registry import FLOWS


def test_prefect_yaml_is_in_sync_with_config_schedules(repo_dir: Path) -> None:
    project = Project(repo_dir)
    schedules = load_file(repo_dir / "config" / "schedules.yaml", Schedules, repo_dir)
    generated = prefect_yaml(project, schedules, schedules.prefect.work_pool)
    assert repo_dir / "prefect.yaml" == PREFECT_YAML
    assert PREFECT_YAML.read_text(encoding="utf-8") == generated, (
        "prefect.yaml is stale: run `dunning deploy --write-prefect-yaml` and commit it"
    )


def test_prefect_yaml_has_one_deployment_per_scheduled_flow(repo_dir: Path) -> None:
    document = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    assert document["build"] is None and document["push"] is None  # no images
    (pull,) = document["pull"]
    assert pull["prefect.deployments.steps.set_working_directory"] == {
        "directory": "{{ $DUNNING_CODE_DIR }}"
    }
    entrypoints = {d["entrypoint"] for d in document["deployments"]}
    assert entrypoints == {spec.entrypoint for spec in FLOWS.values()}
    for deployment in document["deployments"]:
        assert deployment["name"] == "demo-lender"
        assert deployment["work_pool"]["name"] == "dunning"
        assert deployment["concurrency_limit"] == 1
        (schedule,) = deployment["schedules"]
        assert set(schedule) == {"cron", "timezone", "active"}
