"""On demand: backfill a date range of CSV history, then drain both groups and reconcile.

Trigger with params (the UI shows a form; `airflow dags trigger warehouse_backfill -c '{…}'`):
- data_dir: the folder with the six CSV files (customers.csv, suppliers.csv, products.csv,
  orders.csv, payments.csv, inventory_movements.csv), as the worker sees it;
- from / to: the event-time range [from, to), ISO-8601 with an offset;
- drain: "wait" (long-running consumers drain the groups) or "consume" (this DAG drains them);
- wait_s: with drain=wait, how long reconcile waits for the groups to catch up.

Replaying a range that was loaded before is safe: the loader keeps the latest version of each
row by (version time, event id) and the KPIs count each event once, so nothing is counted twice.
Rows that break the contract go to the dead-letter stream with file, line and field, as in any
replay; the replay task's JSON says how many.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import DAG, Param, task

from sw_common import warehouse_cli
from sw_common.dag_defaults import dag_kwargs
from sw_common.drain import drain_and_reconcile

with DAG(
    dag_id="warehouse_backfill",
    description="StreamWarehouse: replay a date range of CSV history, drain, reconcile",
    schedule=None,
    params={
        "data_dir": Param("data", type="string", minLength=1, description="Folder with the six CSV files"),
        "from": Param("2000-01-01T00:00:00Z", type="string", description="Events at or after this time (ISO-8601 with offset)"),
        "to": Param("2100-01-01T00:00:00Z", type="string", description="Events before this time (ISO-8601 with offset)"),
        "drain": Param("wait", enum=["wait", "consume"], description="Who drains the groups"),
        "wait_s": Param(1800, type="integer", minimum=0, description="drain=wait: seconds reconcile waits for the groups"),
    },
    **dag_kwargs(__doc__, retries=0),
) as dag:

    @task(execution_timeout=timedelta(hours=6))
    def replay(params=None):
        return warehouse_cli.run(
            ["replay", "--data", params["data_dir"], "--from", params["from"], "--to", params["to"], "--speed", "max", "--json"],
            timeout_s=6 * 3600 - 60,
        )

    first, _ = drain_and_reconcile()
    replay() >> first
