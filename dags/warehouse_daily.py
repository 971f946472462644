"""Daily: the calendar kept a year ahead, the dashboard's analytics cache warmed, the day's summary archived.

Streaming replaced the nightly load; this is the scheduled work that stays. The fact tables are not
partitioned (one table each, indexed by date), so there are no partitions to create or drop; the
loader and the `consume` retention pass keep the streams trimmed themselves.

The summary (`warehouse report summary --json`, the figures `reconcile` compares) is written to
<archive>/summary/YYYY-MM-DD.json, atomically; the archive folder is the Variable
warehouse_archive_dir (else WAREHOUSE_ARCHIVE_DIR, else $AIRFLOW_HOME/warehouse-archive).
"""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import DAG, task

from sw_common import warehouse_cli
from sw_common.dag_defaults import dag_kwargs

with DAG(
    dag_id="warehouse_daily",
    description="StreamWarehouse: calendar ahead, analytics cache warmed, daily summary archived",
    schedule="30 1 * * *",
    **dag_kwargs(__doc__, retry_delay=timedelta(minutes=10)),
) as dag:

    @task(execution_timeout=timedelta(minutes=10))
    def calendar_extend():
        return warehouse_cli.run(["calendar", "extend", "--days-ahead", "400", "--json"], timeout_s=580)

    @task(execution_timeout=timedelta(minutes=30))
    def cache_warm():
        # An answer lives until the loader's next commit (or a day at most): on a quiet night the
        # morning's first readers are served from Redis.
        return warehouse_cli.run(["cache", "warm", "--ttl-s", "86400", "--json"], timeout_s=1780)

    @task(execution_timeout=timedelta(minutes=30))
    def archive_summary(ds=None):
        path = os.path.join(warehouse_cli.archive_dir(), "summary", f"{ds}.json")
        return warehouse_cli.run(["report", "summary", "--json", "--output", path], timeout_s=1780)

    calendar_extend() >> cache_warm()
    archive_summary()
