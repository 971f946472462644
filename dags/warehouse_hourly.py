"""Hourly: data-quality checks, Redis's KPIs reconciled against PostgreSQL, consumer lag, new dead letters.

Every task runs one `warehouse … --json` command (sw_common/warehouse_cli.py says which binary and
servers). The run fails when a hard check fails, when any KPI drifts (the error names them), when a
group is STALLED or STOPPED, or (if the Variable warehouse_dlq_fail_above is set) when more rows were
dead-lettered in the hour than it allows. The hour's dead letters are counted by reason either way.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, CronDataIntervalTimetable, Variable, task

from sw_common import warehouse_cli
from sw_common.dag_defaults import dag_kwargs


def describe_check(result):
    failed = [c for c in result.get("checks", []) if c.get("status") == "fail"]
    return "failed checks: " + "; ".join(f"{c['name']} ({c.get('value')}): {c.get('detail', '')}" for c in failed)


def describe_lag(result):
    bad = [r for r in result.get("rows", []) if r.get("status") in ("STALLED", "STOPPED")]
    return f"lag {result.get('status')}: " + ", ".join(
        f"{r['group']} on {r['stream']} {r['status']} (lag {r.get('lag')}, pending {r.get('pending')})" for r in bad
    )


with DAG(
    dag_id="warehouse_hourly",
    description="StreamWarehouse: checks, reconcile, lag and dead letters every hour",
    schedule=CronDataIntervalTimetable("5 * * * *", timezone="UTC"),
    **dag_kwargs(__doc__),
) as dag:

    @task(execution_timeout=timedelta(minutes=15))
    def check():
        return warehouse_cli.run(["check", "--json"], timeout_s=840, describe_failure=describe_check)

    @task(execution_timeout=timedelta(minutes=20))
    def reconcile():
        # --wait: both groups get up to two minutes (the Variable warehouse_reconcile_wait_s) to
        # drain what is in flight before the comparison.
        wait = int(Variable.get("warehouse_reconcile_wait_s", default=None) or 120)
        return warehouse_cli.run(["reconcile", "--wait", str(wait), "--json"], timeout_s=1140, describe_failure=warehouse_cli.describe_drift)

    @task(execution_timeout=timedelta(minutes=5))
    def lag():
        return warehouse_cli.run(["lag", "--window-ms", "10000", "--json"], timeout_s=280, describe_failure=describe_lag)

    @task(execution_timeout=timedelta(minutes=10))
    def dead_letters(data_interval_start=None, data_interval_end=None):
        args = ["dlq", "stats", "--since", data_interval_start.isoformat(), "--until", data_interval_end.isoformat(), "--json"]
        limit = Variable.get("warehouse_dlq_fail_above", default=None)
        if limit not in (None, ""):
            args += ["--fail-above", str(int(limit))]
        return warehouse_cli.run(
            args, timeout_s=580,
            describe_failure=lambda r: f"{r.get('total')} rows dead-lettered in the hour, by reason {r.get('by_reason')}",
        )

    check()
    reconcile()
    lag()
    dead_letters()
