#!/usr/bin/env bash
# `cro fleet` on 1,000 hosts: every host's cro series (cpu, memory and one disk, as
# `cro serve` exports them) for the last hour at a 60 s scrape, written as OpenMetrics,
# backfilled into a Prometheus TSDB with `promtool tsdb create-blocks-from openmetrics`,
# served by a real Prometheus on 127.0.0.1, then timed in alternating rounds:
#   A  cro fleet --json                    (the three queries, parsing, sorting, JSON)
#   B  the same three queries by promtool  (`promtool query instant`: Prometheus alone)
# so cro's own share is A - B. Needs prometheus and promtool (Debian's prometheus package).
# Usage: bash bench/fleet.sh [HOSTS] [ROUNDS]    (defaults 1000 and 7)
set -euo pipefail
cd "$(dirname "$0")/.."
hosts=${1:-1000}
rounds=${2:-7}
cargo build --locked --release --quiet
cro=$PWD/target/release/cro
work=$(mktemp -d /tmp/cro-fleet-bench.XXXXXX)
prom_pid=""
cleanup() {
  [ -n "$prom_pid" ] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

now=$(date +%s)
python3 - "$hosts" "$now" > "$work/series.om" <<'EOF'
import random, sys
hosts, now = int(sys.argv[1]), int(sys.argv[2])
random.seed(7)
times = [now - 3600 + 60 * i for i in range(61)]
names = [f"web-{i:04d}.example:9477" for i in range(hosts)]
res = [("cpu", ""), ("memory", ""), ("disk", "/data")]
# per host: how it stands (most compliant, some at risk, a few not on track)
state = {h: random.choices(["ok", "risk", "miss"], [90, 8, 2])[0] for h in names}
def labels(h, r, m, extra=""):
    l = f'instance="{h}",job="cro",resource="{r}"'
    if m: l += f',mount="{m}"'
    return "{" + l + extra + "}"
def family(name, per_series):
    print(f"# TYPE {name} gauge")
    for h in names:
        for key, value in per_series(h):
            for t in times:
                print(f"{name}{key} {value} {t}")
def per_res(f):
    return lambda h: [(labels(h, r, m, extra), v) for r, m in res for extra, v in f(h, r)]
family("cro_target_ratio", per_res(lambda h, r: [("", 0.25)]))
family("cro_window_ratio", per_res(lambda h, r: [(',statistic="mean"', 0.30 if state[h] == "ok" else 0.18)]))
family("cro_window_coverage_ratio", per_res(lambda h, r: [("", 0.95)]))
family("cro_compliant", per_res(lambda h, r: [("", 1 if state[h] == "ok" else 0)]))
family("cro_forecast_on_track", per_res(lambda h, r: [("", 0 if state[h] == "miss" else 1)]))
family("cro_forecast_organic_ratio", per_res(lambda h, r: [("", 0.12)]))
family("cro_level_ratio", per_res(lambda h, r: [("", 0.27)]))
family("cro_utilization_ratio", per_res(lambda h, r: [(',source="organic"', 0.12), (',source="synthetic"', 0.15)]))
family("cro_synthetic_cost", per_res(lambda h, r: [(',unit="cpu-core-hours"' if r == "cpu" else ',unit="gib-hours"', 150.5)]))
family("cro_synthetic_cost_share_ratio", per_res(lambda h, r: [("", 0.15)]))
host = lambda name, f: family(name, lambda h: [('{instance="%s",job="cro"}' % h, f(h))])
print("# TYPE cro_last_reconcile_timestamp_seconds gauge")
for h in names:
    for t in times:
        print(f'cro_last_reconcile_timestamp_seconds{{instance="{h}",job="cro"}} {t - 20} {t}')
host("cro_config_valid", lambda h: 1)
host("cro_paused", lambda h: 0)
family("cro_build_info", lambda h: [('{instance="%s",job="cro",version="0.1.0"}' % h, 1)])
family("up", lambda h: [('{instance="%s",job="cro"}' % h, 1)])
print("# EOF")
EOF
series=$(grep -v '^#' "$work/series.om" | cut -d' ' -f1 | sort -u | wc -l)
samples=$(grep -vc '^#' "$work/series.om")
echo "generated: $hosts hosts, $series series, $samples samples ($(du -h "$work/series.om" | cut -f1))"
t0=$(date +%s.%N)
promtool tsdb create-blocks-from openmetrics "$work/series.om" "$work/data" >/dev/null
echo "backfilled in $(echo "$(date +%s.%N) - $t0" | bc) s"
rm "$work/series.om"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'global: { scrape_interval: 1h }\nscrape_configs: []\n' > "$work/prometheus.yml"
prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/data" \
  --web.listen-address=127.0.0.1:$port >"$work/prometheus.log" 2>&1 &
prom_pid=$!
url=http://127.0.0.1:$port
for _ in $(seq 100); do
  curl -sf "$url/-/ready" >/dev/null 2>&1 && break
  sleep 0.2
done
# warm up (first queries load the blocks' index), and check the view
"$cro" fleet --prometheus "$url" --json > "$work/fleet.json"
python3 - "$work/fleet.json" "$hosts" <<'EOF'
import json, sys
f = json.load(open(sys.argv[1]))
assert f["hosts_by_state"]["hosts"] == int(sys.argv[2]), f["hosts_by_state"]
print("view:", f["hosts_by_state"], "worst:", f["hosts"][0]["instance"], f["hosts"][0]["state"])
EOF
queries=(
  "$(python3 -c 'import re;s=open("src/fleet/view.rs").read();print(re.search(r"METRICS_QUERY: &str = \"(.*)\";",s).group(1).replace(chr(92)+chr(34),chr(34)))')"
  "max by (instance) (max_over_time(cro_last_reconcile_timestamp_seconds[6h]))"
  "min by (instance) (up)"
)
ms() { python3 -c "import time;print(int(time.time()*1000))"; }
a=(); b=()
for r in $(seq "$rounds"); do
  s=$(ms); "$cro" fleet --prometheus "$url" --json >/dev/null; e=$(ms); a+=($((e - s)))
  s=$(ms); for q in "${queries[@]}"; do promtool query instant -o json "$url" "$q" >/dev/null; done; e=$(ms); b+=($((e - s)))
  echo "round $r: cro fleet --json ${a[-1]} ms; promtool, same 3 queries ${b[-1]} ms"
done
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
echo "median of $rounds rounds, $hosts hosts: cro fleet --json $(median "${a[@]}") ms; promtool (Prometheus alone) $(median "${b[@]}") ms; goal < 2000 ms"
