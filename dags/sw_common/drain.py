"""The tail shared by the on-demand DAGs: both consumer groups drained, then Redis reconciled against PostgreSQL.

params.drain chooses who drains the groups:
- "wait" (the default): the long-running consumers do (docker compose, systemd, run.sh); the
  drain tasks are skipped and `reconcile --wait` gives the groups params.wait_s to catch up;
- "consume": no consumer runs (a bare warehouse, a test); each group is drained by
  `warehouse consume --group G --until-drained`, which exits once nothing is left.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import task
from airflow.sdk.exceptions import AirflowSkipException

from sw_common import warehouse_cli


def drain_and_reconcile():
    """Adds drain_warehouse >> drain_kpi >> reconcile to the DAG being defined; returns (first, last)."""

    def drain(group):
        @task(task_id=f"drain_{group}", execution_timeout=timedelta(hours=6))
        def drain_group(params=None):
            if params.get("drain", "wait") != "consume":
                raise AirflowSkipException("params.drain is wait: the long-running consumers drain the groups")
            return warehouse_cli.run(
                ["consume", "--group", group, "--until-drained", "--trim-every-ms", "0", "--json"], timeout_s=6 * 3600 - 60
            )

        return drain_group()

    @task(trigger_rule="none_failed", execution_timeout=timedelta(hours=6))
    def reconcile(params=None):
        wait = int(params.get("wait_s", 1800)) if params.get("drain", "wait") != "consume" else 30
        return warehouse_cli.run(
            ["reconcile", "--wait", str(wait), "--json"], timeout_s=6 * 3600 - 60, describe_failure=warehouse_cli.describe_drift
        )

    first, second, last = drain("warehouse"), drain("kpi"), reconcile()
    first >> second >> last
    return first, last
