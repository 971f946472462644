#!/usr/bin/env bash
# Checks what deploy/ gives Prometheus and Grafana, with the tools made for them:
#   - promtool check rules, and promtool test rules (each alert fires on its case after its `for`,
#     and stays silent on the near misses);
#   - promtool check config of the compose profile's prometheus.yml;
#   - the Grafana board: deploy/grafana/build_dashboard.py --check (grafana-foundation-sdk: the
#     JSON is what the SDK's typed builders make, and loads back into its Dashboard model);
#   - live: a real Prometheus (Debian's, 2.42) with the rules, scraping a dashboard and a kpi
#     consumer bound to 0.0.0.0 with WAREHOUSE_AUTH_TOKEN: both scraped with the token (up 1), the
#     same dashboard without it is refused (up 0, and WarehouseProcessDown goes pending), every rule
#     evaluates without error, and the reconcile drift gauge reads 0 on a clean warehouse.
#     It uses REDIS_URL, DATABASE_URL and WAREHOUSE_BIN (scripts/test.sh sets them; otherwise the
#     services.sh servers and the debug build) on a database and namespace of its own.
# Installs Debian's prometheus package (for promtool) when promtool is missing, and makes the SDK's
# venv once under ~/.cache/streamwarehouse.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$SW_ROOT"

command -v promtool >/dev/null 2>&1 || sw_apt_install prometheus
venv=$(sw_venv grafana-venv "$SW_ROOT/deploy/grafana/requirements.txt")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sw-deploy.XXXXXX")
pids=()
database="sw_deploy_$$"
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${admin_url:-}" ] && psql "$admin_url" -qc "DROP DATABASE IF EXISTS $database" >/dev/null 2>&1 || true
  [ $rc -eq 0 ] && rm -rf "$tmp" || sw_log "logs kept in $tmp"
  exit $rc
}
trap cleanup EXIT

promtool check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && promtool test rules alerts_test.yml)
# prometheus.yml as the container sees it: the rules and the token file at their mounted paths.
echo "a-token-for-the-config-check-only" >"$tmp/token"
sed -e "s|/etc/prometheus/alerts.yml|$SW_ROOT/deploy/prometheus/alerts.yml|" -e "s|/run/secrets/warehouse_auth_token|$tmp/token|" \
  deploy/prometheus/prometheus.yml >"$tmp/prometheus.yml"
promtool check config "$tmp/prometheus.yml"
"$venv/bin/python" deploy/grafana/build_dashboard.py --check

# Live: Prometheus scraping real processes with the token.
bin="${WAREHOUSE_BIN:-$SW_ROOT/.build/debug/warehouse}"
[ -x "$bin" ] || sw_die "no warehouse binary at $bin: build first (swift build)"
if [ -z "${DATABASE_URL:-}" ] || [ -z "${REDIS_URL:-}" ]; then eval "$("$SW_ROOT/scripts/services.sh" env)"; fi
admin_url="${DATABASE_URL%/*}/postgres"
psql "$admin_url" -qc "CREATE DATABASE $database" >/dev/null
export DATABASE_URL="${DATABASE_URL%/*}/$database" WAREHOUSE_NAMESPACE="deploy$$"
export WAREHOUSE_AUTH_TOKEN="deploy-check-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
printf %s "$WAREHOUSE_AUTH_TOKEN" >"$tmp/token"
"$bin" migrate >/dev/null
dash_port=$(sw_free_port) kpi_port=$(sw_free_port) prom_port=$(sw_free_port)
"$bin" dashboard --host 0.0.0.0 --port "$dash_port" --reconcile-every-s 2 >"$tmp/dashboard.out" 2>"$tmp/dashboard.log" & pids+=($!)
"$bin" consume --group kpi --metrics-host 0.0.0.0 --metrics-port "$kpi_port" 2>"$tmp/kpi.log" & pids+=($!)
cat >"$tmp/live.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: ["$SW_ROOT/deploy/prometheus/alerts.yml"]
scrape_configs:
  - job_name: warehouse-dashboard
    authorization: {type: Bearer, credentials_file: "$tmp/token"}
    static_configs: [{targets: ["127.0.0.1:$dash_port"]}]
  - job_name: warehouse-consumers
    authorization: {type: Bearer, credentials_file: "$tmp/token"}
    static_configs: [{targets: ["127.0.0.1:$kpi_port"]}]
  - job_name: warehouse-without-token
    static_configs: [{targets: ["127.0.0.1:$dash_port"]}]
YML
prometheus --config.file="$tmp/live.yml" --storage.tsdb.path="$tmp/tsdb" --web.listen-address="127.0.0.1:$prom_port" 2>"$tmp/prometheus.log" & pids+=($!)
api="http://127.0.0.1:$prom_port/api/v1"
# The live verdict, as one line of JSON: what Prometheus says about the targets, rules and alerts.
verdict() {
  python3 - "$api" <<'PY'
import json, sys, urllib.parse, urllib.request
api = sys.argv[1]
def get(path):
    with urllib.request.urlopen(api + path, timeout=5) as r:
        return json.load(r)["data"]
def query(q):
    return get("/query?query=" + urllib.parse.quote(q))["result"]
up = {r["metric"]["job"]: r["value"][1] for r in query("up")}
drift = [r["value"][1] for r in query("warehouse_reconcile_drift_kpis")]
rules = [r for g in get("/rules")["groups"] for r in g["rules"]]
alerts = sorted({(a["labels"]["alertname"], a["labels"].get("job", "")) for a in get("/alerts")["alerts"]})
ok = (up.get("warehouse-dashboard") == "1" and up.get("warehouse-consumers") == "1" and up.get("warehouse-without-token") == "0"
      and drift == ["0"] and len(rules) == 11 and all(r["health"] == "ok" for r in rules)
      and ("WarehouseProcessDown", "warehouse-without-token") in alerts)
print(json.dumps({"ok": ok, "up": up, "drift": drift, "rules": len(rules), "unhealthy": [r["name"] for r in rules if r["health"] != "ok"], "alerts": alerts}))
PY
}
for _ in $(seq 60); do
  sleep 1
  result=$(verdict 2>/dev/null) || continue
  case "$result" in '{"ok": true'*) break ;; esac
done
echo "live Prometheus: ${result:-no answer}"
case "${result:-}" in '{"ok": true'*) ;; *) sw_die "the live Prometheus check failed (logs in $tmp)" ;; esac
