"""Builds deploy/grafana/streamwarehouse.json with grafana-foundation-sdk's typed builders.

    python build_dashboard.py            writes the JSON
    python build_dashboard.py --check    fails if the committed JSON is not what the builders make,
                                         or does not load back as a Dashboard model

Edit this file, not the JSON; scripts/deploy-check.sh runs --check. The metrics are those of
`warehouse dashboard` and `warehouse consume/replay/produce --metrics-port` (see
deploy/prometheus/alerts.yml for which process serves which).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

OUT = Path(__file__).with_name("streamwarehouse.json")
DS = model.DataSourceRef(type_val="prometheus", uid="${datasource}")


_ids = iter(range(1, 1000))


def row(title: str) -> db.Row:
    return db.Row(title).id(next(_ids))


def query(expr: str, legend: str = "", ref: str = "A") -> prometheus.Dataquery:
    q = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(DS)
    return q.legend_format(legend) if legend else q


def series(title: str, description: str, unit: str, *queries: prometheus.Dataquery, w: int = 12, h: int = 8) -> timeseries.Panel:
    panel = timeseries.Panel().id(next(_ids)).title(title).description(description).unit(unit).datasource(DS).span(w).height(h).fill_opacity(10)
    for q in queries:
        panel = panel.with_target(q)
    return panel


def single(title: str, description: str, unit: str, expr: str, steps: list[tuple[float | None, str]], w: int = 4) -> stat.Panel:
    thresholds = db.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(
        [model.Threshold(value=v, color=c) for v, c in steps]
    )
    return stat.Panel().id(next(_ids)).title(title).description(description).unit(unit).datasource(DS).span(w).height(4).with_target(
        query(expr)
    ).thresholds(thresholds)


def build() -> model.Dashboard:
    return (
        db.Dashboard("StreamWarehouse")
        .uid("streamwarehouse")
        .description("Freshness, throughput, errors and exactness of the StreamWarehouse pipeline")
        .tags(["streamwarehouse"])
        .refresh("30s")
        .time("now-6h", "now")
        .timezone("browser")
        .with_variable(db.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_row(row("Health"))
        .with_panel(single("Redis", "1 when the dashboard's last probe reached Redis", "none", "min(warehouse_redis_up)", [(None, "red"), (1, "green")]))
        .with_panel(single("PostgreSQL", "1 when the dashboard's last probe reached PostgreSQL", "none", "min(warehouse_postgres_up)", [(None, "red"), (1, "green")]))
        .with_panel(single("KPIs drifting", "KPIs that differed from SQL at the last settled reconcile", "none", "max(warehouse_reconcile_drift_kpis)", [(None, "green"), (1, "red")]))
        .with_panel(single("Last settled reconcile", "Age of the last reconcile made with both groups drained", "s", "time() - max(warehouse_reconcile_last_settled_timestamp_seconds)", [(None, "green"), (10800, "orange")]))
        .with_panel(single("Dead letters", "Entries in the dead-letter stream", "none", "max(warehouse_dead_letter_entries)", [(None, "green"), (1, "orange")]))
        .with_panel(single("Groups not OK", "Groups whose lag status is WARN, STALLED or STOPPED", "none", 'count(max by (group) (warehouse_group_status{status!="OK"}) == 1) or vector(0)', [(None, "green"), (1, "red")]))
        .with_row(row("Freshness"))
        .with_panel(series("Lag (entries)", "Entries each group has not read yet, summed over its streams", "short",
                           query("max by (group) (warehouse_lag_entries)", "{{group}}"),
                           query("max by (group) (warehouse_pending_entries)", "{{group}} pending", "B")))
        .with_panel(series("Lag (seconds)", "Age of the oldest entry each group has not read", "s",
                           query("max by (group) (warehouse_lag_seconds)", "{{group}}")))
        .with_panel(series("Group status", "1 while a group has that status (OK, WARN, STALLED, STOPPED)", "none",
                           query('max by (group, status) (warehouse_group_status) == 1', "{{group}} {{status}}")))
        .with_panel(series("Circuit breakers", "0 closed, 1 half open, 2 open", "none",
                           query("max by (group) (warehouse_circuit_breaker_state)", "{{group}}")))
        .with_row(row("Throughput"))
        .with_panel(series("Events published", "Per second, by replay and produce", "ops",
                           query("sum by (source) (rate(warehouse_events_published_total[1m]))", "{{source}}")))
        .with_panel(series("Events applied", "Per second, by consumer group", "ops",
                           query("sum by (group) (rate(warehouse_events_applied_total[1m]))", "{{group}}"),
                           query("sum by (group) (rate(warehouse_events_dead_lettered_total[1m]))", "{{group}} dead-lettered", "B")))
        .with_panel(series("Batch duration (p95)", "Time to apply and acknowledge one batch", "s",
                           query("histogram_quantile(0.95, sum by (group, le) (rate(warehouse_batch_duration_seconds_bucket[5m])))", "{{group}}")))
        .with_panel(series("Dashboard requests", "Requests per second by status, and the 95th percentile latency", "reqps",
                           query("sum by (status) (rate(warehouse_http_requests_total[1m]))", "{{status}}"),
                           query("histogram_quantile(0.95, sum by (le) (rate(warehouse_http_request_duration_seconds_bucket[5m])))", "p95 latency (s)", "B")))
        .with_panel(series("Analytics cache", "Hits and misses per second", "ops",
                           query("sum(rate(warehouse_cache_hits_total[5m]))", "hits"),
                           query("sum(rate(warehouse_cache_misses_total[5m]))", "misses", "B")))
        .with_panel(series("Reconciles", "Periodic reconciles per hour by result (clean, drift, unsettled, error)", "short",
                           query("sum by (result) (increase(warehouse_reconcile_runs_total[1h]))", "{{result}}")))
        .build()
    )


def render() -> str:
    global _ids
    _ids = iter(range(1, 1000))
    return json.dumps(build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main() -> int:
    text = render()
    if "--check" not in sys.argv:
        OUT.write_text(text)
        print(f"wrote {OUT}")
        return 0
    committed = OUT.read_text()
    if committed != text:
        print(f"{OUT} is not what build_dashboard.py makes: run python deploy/grafana/build_dashboard.py", file=sys.stderr)
        return 1
    loaded = model.Dashboard.from_json(json.loads(committed))
    again = json.dumps(loaded, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"
    if again != committed:
        print(f"{OUT} does not survive a load into the Dashboard model and back", file=sys.stderr)
        return 1
    panels = [p for p in json.loads(committed)["panels"] if p.get("type") != "row"]
    for panel in panels:
        if not panel.get("targets") or any(not t.get("expr") for t in panel["targets"]):
            print(f"panel {panel.get('title')!r} has a target without a query", file=sys.stderr)
            return 1
    print(f"{OUT.name}: {len(panels)} panels, valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
