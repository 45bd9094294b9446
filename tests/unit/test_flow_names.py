"""config/schedules.yaml's flow names (plain data in config) and the flows' table agree."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dunning.config.schedules import FLOW_NAMES, Schedules
from flows.registry import SCHEDULABLE, check_flow_names

REPO = Path(__file__).resolve().parents[2]


def test_every_schedulable_flow_is_a_flow_name_config_accepts() -> None:
    assert sorted(SCHEDULABLE) == sorted(FLOW_NAMES)
    Schedules.model_validate(
        {"flows": {name: {"cron": "0 7 * * *", "timezone": "UTC"} for name in FLOW_NAMES}}
    )


def test_the_flows_table_refuses_to_load_when_the_names_drift() -> None:
    with pytest.raises(RuntimeError, match="not in FLOW_NAMES: daily-outreach-sharded; not in"):
        check_flow_names(SCHEDULABLE, tuple(n for n in FLOW_NAMES if "sharded" not in n))
    with pytest.raises(RuntimeError, match="not in SCHEDULABLE: nightly-digest"):
        check_flow_names(SCHEDULABLE, (*FLOW_NAMES, "nightly-digest"))
    # At import: a flow added to config's names but not to the table stops flows.registry.
    code = (
        "import dunning.config.schedules as s\n"
        "s.FLOW_NAMES = (*s.FLOW_NAMES, 'nightly-digest')\n"
        "import flows.registry\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode != 0
    assert "not in SCHEDULABLE: nightly-digest" in done.stderr


def test_configuration_imports_no_adapters_flows_or_services() -> None:
    """Loading and validating config pulls in no adapter, flow, service or database module."""
    code = (
        "import sys\n"
        "from dunning.config import ActionsConfig, ChannelsConfig, Schedules\n"
        "ChannelsConfig.model_validate({'channels': {'sms': {'adapter': 'mock-sms'}}})\n"
        "ActionsConfig.model_validate({'adapters': {'agency': {'adapter': 'mock-agency'}}})\n"
        "Schedules.model_validate({'flows': {'daily-outreach': {'cron': '0 7 * * *',"
        " 'timezone': 'UTC'}}})\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('adapters', 'flows', 'sandbox')"
        " or m.startswith(('dunning.services', 'dunning.db')))\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
