"""Run summaries as Prefect table artifacts, and structured run logs: counts only, never PII."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact


def summary_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Flatten a run summary into (section, key, value) rows for a table."""
    rows: list[dict[str, Any]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif value is not None:
            section, _, key = prefix.partition(".")
            rows.append({"section": section, "key": key or section, "value": value})

    walk("", summary)
    return rows


def publish_summary(flow_name: str, summary: dict[str, Any]) -> None:
    get_run_logger().info(
        "%s %s: run %s finished",
        flow_name,
        summary.get("as_of", "?"),
        summary.get("run_id"),
        extra={"flow": flow_name, "run_id": summary.get("run_id"), "as_of": summary.get("as_of")},
    )
    create_table_artifact(
        key=f"{flow_name}-summary",
        table=summary_rows(summary),
        description=f"{flow_name} for {summary.get('as_of', '?')}: counts by tier, channel, "
        "status and suppression (no personal data).",
    )


def log_batch(
    stage: str, run_id: int | None, as_of: date | None, lo: int | None, hi: int | None, report: Any
) -> None:
    """One structured line per batch task: run id, stage, as-of, batch range and its counts."""
    counts = {
        key: value
        for key, value in (report or {}).items()
        if isinstance(value, int) and not isinstance(value, bool)
    }
    get_run_logger().info(
        "%s batch %s-%s: %s",
        stage,
        lo,
        hi,
        ", ".join(f"{key}={value}" for key, value in counts.items()) or "done",
        extra={
            "run_id": run_id,
            "stage": stage,
            "as_of": as_of.isoformat() if as_of else None,
            "batch": f"{lo}-{hi}",
            **counts,
        },
    )
