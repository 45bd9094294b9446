"""The committed prefect.yaml is what `dunning deploy --write-prefect-yaml` makes of schedules."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from dunning.config import Schedules, load_file
from dunning.ops.deploy import PREFECT_YAML, prefect_yaml
from dunning.project import Project
from flows.registry import FLOWS, SHARDED


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


def test_prefect_yaml_of_a_sharded_program_has_the_shard_flows(
    repo_dir: Path, tmp_path: Path
) -> None:
    """As `dunning deploy` registers them: the parent on its schedule, the shard on none."""
    root = tmp_path / "program"
    shutil.copytree(repo_dir / "config", root / "config")
    shutil.copy(repo_dir / "dunning.yaml", root / "dunning.yaml")
    (root / "config" / "runners.yaml").write_text(yaml.safe_dump({"shards": {"count": 3}}))
    schedules_file = root / "config" / "schedules.yaml"
    raw = yaml.safe_load(schedules_file.read_text(encoding="utf-8"))
    raw["flows"]["daily-outreach"]["enabled"] = False
    raw["flows"]["daily-outreach-sharded"] = {"cron": "30 7 * * *", "timezone": "Asia/Shanghai"}
    schedules_file.write_text(yaml.safe_dump(raw), encoding="utf-8")
    schedules = load_file(schedules_file, Schedules, root)
    document = yaml.safe_load(prefect_yaml(Project(root), schedules, "dunning"))
    by_entrypoint = {d["entrypoint"]: d for d in document["deployments"]}
    parent = by_entrypoint[SHARDED["daily-outreach-sharded"].entrypoint]
    shard = by_entrypoint[SHARDED["daily-outreach-shard"].entrypoint]
    assert parent["schedules"] == [
        {"cron": "30 7 * * *", "timezone": "Asia/Shanghai", "active": True}
    ]
    assert parent["concurrency_limit"] == 1
    assert shard["schedules"] == [] and shard["concurrency_limit"] is None
    assert "started by daily-outreach-sharded" in shard["description"]
    assert by_entrypoint[FLOWS["daily-outreach"].entrypoint]["schedules"][0]["active"] is False
