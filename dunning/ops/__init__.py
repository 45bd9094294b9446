"""Operations: schedules, the single-box scheduler, Prefect deployments, run history, backfill.

Modules import their heavy dependencies (APScheduler, Prefect) themselves; import the one needed.
"""
