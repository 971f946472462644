"""On demand: put dead-lettered rows back on their streams, corrected, then drain and reconcile.

Trigger with params:
- ids: dead-letter entry ids (from `warehouse dlq list`), or
- all: true, with reason: only the entries with that reason code (`warehouse dlq stats` counts them
  by reason), or every entry when reason is empty;
- set: corrections, each "field=value" (a CSV column or an event field), applied before publishing;
- drain / wait_s: as in warehouse_backfill.

A replay reject is validated again first: one that still breaks the contract stays dead-lettered,
and the task fails saying why, entry by entry.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param, task
from airflow.sdk.exceptions import AirflowFailException

from sw_common import warehouse_cli
from sw_common.dag_defaults import dag_kwargs
from sw_common.drain import drain_and_reconcile


def describe_redrive(result):
    rejected = result.get("still_rejected", [])
    return f"{len(result.get('redriven', []))} redriven, {len(rejected)} still rejected: " + "; ".join(
        f"{r['id']}: {r['reason']}" for r in rejected[:20]
    )


with DAG(
    dag_id="warehouse_dlq_redrive",
    description="StreamWarehouse: redrive dead letters with a correction, drain, reconcile",
    schedule=None,
    params={
        "ids": Param([], type="array", items={"type": "string"}, description="Entry ids to redrive"),
        "all": Param(False, type="boolean", description="Every entry (with reason, if given) instead of ids"),
        "reason": Param("", type="string", description="With all: only entries with this reason code"),
        "set": Param([], type="array", items={"type": "string", "pattern": "^[^=]+=.*$"}, description="Corrections: field=value"),
        "drain": Param("wait", enum=["wait", "consume"], description="Who drains the groups"),
        "wait_s": Param(1800, type="integer", minimum=0, description="drain=wait: seconds reconcile waits for the groups"),
    },
    **dag_kwargs(__doc__, retries=0),
) as dag:

    @task(execution_timeout=timedelta(hours=1))
    def redrive(params=None):
        ids, everything, reason = list(params.get("ids") or []), bool(params.get("all")), params.get("reason") or ""
        if bool(ids) == everything:
            raise AirflowFailException("give ids, or all: true (not both)")
        args = ["dlq", "redrive", *ids] if ids else ["dlq", "redrive", "--all"]
        if reason:
            if not everything:
                raise AirflowFailException("reason selects among all's entries: set all: true")
            args += ["--reason", reason]
        for correction in params.get("set") or []:
            args += ["--set", correction]
        return warehouse_cli.run([*args, "--json"], timeout_s=3540, describe_failure=describe_redrive)

    first, _ = drain_and_reconcile()
    redrive() >> first
