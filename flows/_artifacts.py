"""Run summaries as Prefect table artifacts: counts only, never PII."""

from __future__ import annotations

from typing import Any

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
    create_table_artifact(
        key=f"{flow_name}-summary",
        table=summary_rows(summary),
        description=f"{flow_name} for {summary.get('as_of', '?')}: counts by tier, channel, "
        "status and suppression reason (no personal data).",
    )
