"""Runs one `warehouse … --json` command for an Airflow task: the DAGs hold no SQL and no Redis calls.

Which binary and which servers, looked up when the task runs (never at parse time), first from an
Airflow Variable, then from the environment of the worker:

    Variable                  environment            default
    warehouse_bin             WAREHOUSE_BIN          `warehouse` on PATH
    warehouse_redis_url       REDIS_URL              the CLI's default (redis://127.0.0.1:16379/0)
    warehouse_database_url    DATABASE_URL           the CLI's default (postgresql://warehouse@127.0.0.1:15432/warehouse)
    warehouse_namespace       WAREHOUSE_NAMESPACE    sw
    warehouse_archive_dir     WAREHOUSE_ARCHIVE_DIR  $AIRFLOW_HOME/warehouse-archive

The URLs are masked in task logs (warehouse itself never prints a URL's password). PostgreSQL's
password is better kept out of the URL altogether: libpq reads PGPASSWORD and ~/.pgpass from the
worker's environment. The worker's environment is passed on to `warehouse` whole.

The command's standard output is one JSON object (its last line); it is returned, so it lands in
XCom and the next task or a person can read it. A non-zero exit fails the task with the command's
own words (standard error and the JSON it printed), so the failure in the Airflow UI says what went
wrong: which KPIs drifted, which group is STALLED, which check failed.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from typing import Any

from airflow.sdk import Variable
from airflow.sdk.exceptions import AirflowException
from airflow.sdk.log import mask_secret

_SETTINGS = {
    # variable name: (environment name, what the CLI calls it)
    "warehouse_redis_url": ("REDIS_URL", "REDIS_URL"),
    "warehouse_database_url": ("DATABASE_URL", "DATABASE_URL"),
    "warehouse_namespace": ("WAREHOUSE_NAMESPACE", "WAREHOUSE_NAMESPACE"),
}


def setting(variable: str, environment: str, default: str | None = None) -> str | None:
    """An Airflow Variable, else the worker's environment, else `default` (an empty value counts as unset)."""
    value = Variable.get(variable, default=None)
    if value:
        return str(value)
    return os.environ.get(environment) or default


def binary() -> str:
    return setting("warehouse_bin", "WAREHOUSE_BIN", "warehouse")


def archive_dir() -> str:
    home = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
    return setting("warehouse_archive_dir", "WAREHOUSE_ARCHIVE_DIR", os.path.join(home, "warehouse-archive"))


class WarehouseCommandFailed(AirflowException):
    """`warehouse` exited non-zero; the message holds what it said."""

    def __init__(self, message: str, result: dict[str, Any] | None):
        super().__init__(message)
        self.result = result


def last_json(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                return None
    return None


def describe_drift(result: dict[str, Any]) -> str:
    """`reconcile --json`'s drift as one line: how many KPIs, which, and both values (20 at most)."""
    drift = result.get("drift", [])
    shown = ", ".join(f"{d['kpi']} (redis {d.get('redis')}, postgres {d.get('postgres')})" for d in drift[:20])
    more = f" and {len(drift) - 20} more" if len(drift) > 20 else ""
    return f"DRIFT in {len(drift)} of {result.get('compared')} KPIs: {shown}{more}"


def run(args: list[str], timeout_s: float, describe_failure=None) -> dict[str, Any]:
    """Runs `warehouse ARGS` (ARGS must hold --json) and returns the JSON object it printed.

    `describe_failure(result)` turns the JSON of a failed run into one line for the error.
    """
    env = dict(os.environ)
    for variable, (environment, name) in _SETTINGS.items():
        value = setting(variable, environment)
        if value:
            if "url" in variable:
                mask_secret(value, name=variable)
            env[name] = value
    command = [binary(), *args]
    print("running: " + shlex.join(command), flush=True)
    try:
        completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    except FileNotFoundError as error:
        raise AirflowException(
            f"cannot run {command[0]}: {error}; set the Airflow Variable warehouse_bin or WAREHOUSE_BIN to the warehouse binary"
        ) from error
    except subprocess.TimeoutExpired as error:
        raise AirflowException(f"{shlex.join(command)} did not finish within {timeout_s:.0f} s") from error
    if completed.stderr.strip():
        print(completed.stderr.rstrip(), flush=True)
    result = last_json(completed.stdout)
    if completed.returncode != 0:
        detail = describe_failure(result) if (describe_failure and result is not None) else None
        said = completed.stderr.strip().splitlines()[-1:] or completed.stdout.strip().splitlines()[-1:]
        raise WarehouseCommandFailed(
            f"warehouse {args[0]} exited {completed.returncode}: " + (detail or (said[0] if said else "no output")), result
        )
    if result is None:
        raise AirflowException(f"warehouse {args[0]} printed no JSON object: {completed.stdout[-500:]!r}")
    print(json.dumps(result, sort_keys=True)[:4000], flush=True)
    return result
