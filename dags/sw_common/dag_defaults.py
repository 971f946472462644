"""What every StreamWarehouse DAG shares: start date, no catch-up, one run at a time, owner, tags, retries."""

from __future__ import annotations

import os
from datetime import datetime, timedelta


def dag_kwargs(doc: str | None, *, retries: int | None = None, retry_delay: timedelta = timedelta(minutes=5)) -> dict:
    """Keyword arguments for DAG(...). Scheduled DAGs retry WAREHOUSE_DAG_RETRIES times (2 by default,
    read when the file is parsed); on-demand ones pass retries=0 (a backfill is re-triggered, not retried)."""
    if retries is None:
        retries = int(os.environ.get("WAREHOUSE_DAG_RETRIES", "2"))
    return {
        "start_date": datetime(2026, 1, 1),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": {"owner": "data-platform", "retries": retries, "retry_delay": retry_delay},
        "tags": ["streamwarehouse"],
        "doc_md": doc,
    }
