#!/usr/bin/env bash
# Checks what deploy/ gives Prometheus and Grafana, with the tools made for them:
#   - promtool check rules, and promtool test rules (each alert fires on its case after its `for`,
#     and stays silent on the near misses);
#   - promtool check config of the compose profile's prometheus.yml;
#   - the Grafana board: deploy/grafana/build_dashboard.py --check (grafana-foundation-sdk: the
#     JSON is what the SDK's typed builders make, and loads back into its Dashboard model).
# Installs Debian's prometheus package (for promtool) when promtool is missing, and makes the SDK's
# venv once under ~/.cache/streamwarehouse.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$SW_ROOT"

command -v promtool >/dev/null 2>&1 || sw_apt_install prometheus
venv=$(sw_venv grafana-venv "$SW_ROOT/deploy/grafana/requirements.txt")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/sw-deploy.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

promtool check rules deploy/prometheus/alerts.yml
(cd deploy/prometheus && promtool test rules alerts_test.yml)
# prometheus.yml as the container sees it: the rules and the token file at their mounted paths.
echo "a-token-for-the-config-check-only" >"$tmp/token"
sed -e "s|/etc/prometheus/alerts.yml|$SW_ROOT/deploy/prometheus/alerts.yml|" -e "s|/run/secrets/warehouse_auth_token|$tmp/token|" \
  deploy/prometheus/prometheus.yml >"$tmp/prometheus.yml"
promtool check config "$tmp/prometheus.yml"
"$venv/bin/python" deploy/grafana/build_dashboard.py --check
