"""config/runners.yaml: where the daily run's batch tasks execute (docs/scaling.md).

The file is optional. Without it (or without `dask.address`) the batches run in the run's own
process, or in `processes` worker processes on this machine (dunning.services.daily.workers).
`dask.address: local` starts a Dask LocalCluster for the run (demos, tests, one big box);
`tcp://host:8786` hands the batches to a running Dask scheduler, whose workers must have Dunning
installed and reach the same database and state directory. A `shards` section sets up the
sharded daily run (`daily-outreach-sharded`), which starts one child deployment run per shard:
`dunning deploy` registers its two flows only then. `runs` sets the heartbeat by which a run
whose process died is known to be abandoned.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from dunning.config._base import ConfigModel
from dunning.config.loader import load_optional

LOCAL = "local"
SCHEMES = ("tcp://", "tls://", "ucx://", "inproc://", "ws://", "wss://")


class LocalClusterSettings(ConfigModel):
    """The LocalCluster that `address: local` starts for each run."""

    workers: int = Field(default=2, ge=1, le=256, description="worker processes (or threads)")
    threads_per_worker: int = Field(default=1, ge=1, le=64)
    processes: bool = Field(
        default=True, description="workers in processes of their own (false: threads of the flow)"
    )


class DaskSettings(ConfigModel):
    address: str | None = Field(
        default=None,
        description="none: threads in the flow's process; `local`: a LocalCluster per run; "
        "a scheduler address such as tcp://10.0.0.5:8786",
    )
    local: LocalClusterSettings = Field(default_factory=LocalClusterSettings)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None or value == LOCAL or value.startswith(SCHEMES):
            return value
        raise ValueError(f"use `{LOCAL}` or a scheduler address such as tcp://host:8786")


class ShardSettings(ConfigModel):
    """The sharded daily run: how many child runs, and the deployment that runs them."""

    count: int = Field(default=4, ge=1, le=1000, description="child runs (account id ranges)")
    deployment: str | None = Field(
        default=None,
        pattern=r"^[^/]+/[^/]+$",
        description="flow/deployment of the shard flow; default daily-outreach-shard/<the "
        "program's name> as `dunning deploy` registers it",
    )
    poll_seconds: float = Field(default=2.0, gt=0, le=60, description="how often to look")
    timeout_seconds: int = Field(
        default=6 * 3600, ge=10, description="longest wait for the children; then the run fails"
    )


class RunSettings(ConfigModel):
    """The run lifecycle's heartbeat (dunning.services.runs)."""

    heartbeat_seconds: float = Field(
        default=30, gt=0, le=3600, description="how often a running run stamps its row"
    )
    abandoned_after_seconds: float = Field(
        default=300,
        gt=0,
        description="a running run with no heartbeat this long is abandoned (its process "
        "died); the next run of the same flow and date takes over",
    )

    @model_validator(mode="after")
    def _longer_than_beats(self) -> RunSettings:
        if self.abandoned_after_seconds < 3 * self.heartbeat_seconds:
            raise ValueError(
                "abandoned_after_seconds must be at least three heartbeats, so a busy "
                "database that delays one beat does not make a live run abandoned"
            )
        return self


class RunnersConfig(ConfigModel):
    processes: int = Field(
        default=1,
        ge=1,
        le=256,
        description="worker processes that plan and dispatch the batches on this machine when "
        "no Dask cluster is named (one per core uses the machine); 1: the run's own process",
    )
    dask: DaskSettings = Field(default_factory=DaskSettings)
    shards: ShardSettings | None = Field(
        default=None,
        description="present: the sharded daily run is set up (`dunning deploy` registers it)",
    )
    runs: RunSettings = Field(default_factory=RunSettings)


def load_runners(config_dir: Path, root: Path | None = None) -> RunnersConfig:
    """config/runners.yaml of a program directory, or the defaults when there is none."""
    return load_optional(config_dir / "runners.yaml", RunnersConfig, root)
