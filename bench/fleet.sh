#!/usr/bin/env bash
# `cro fleet` on a fleet of HOSTS hosts, on Prometheus and on VictoriaMetrics.
#
# Every host's cro series (cpu, memory and one disk, as `cro serve` exports them: 38 a
# host that the view reads) for the hour up to time T at a 60 s scrape, written as
# OpenMetrics, then
#   Prometheus:      backfilled with `promtool tsdb create-blocks-from openmetrics`, the
#                    rules of examples/prometheus-rules.yml backfilled for T's last ten
#                    minutes with `promtool tsdb create-blocks-from rules`;
#   VictoriaMetrics: imported through /api/v1/import/prometheus, the rules replayed for
#                    the same minutes by `vmalert -replay.*`, written back to it.
# Both on 127.0.0.1, every query asked as of T (`cro fleet --at T`, the API's `time`
# parameter), so the data stays as fresh as at T however long the set-up takes.
# It checks that each store's view has every host and that the view from the recorded
# series (group cro-fleet-view) is the view from the raw series, then times in
# alternating rounds, for each store:
#   A  cro fleet --json                     (auto: the recorded series)
#   B  the same queries by curl, side by side as cro asks them (the store alone)
#   C  cro fleet --json --source raw        (every raw series, as before the rules)
#   D  the raw queries by curl, side by side
# so cro's own share is A - B; `cro fleet --timings` splits it (parse, judge, sort,
# print, in CPU time). It also times each rule as an instant query (what one evaluation of the rules
# costs each store) and reads each store's memory. Needs prometheus, promtool,
# victoria-metrics, vmalert (Debian's prometheus and victoria-metrics packages).
# Usage: bash bench/fleet.sh [HOSTS] [ROUNDS] [STORES]    (RULE_TIMES=1: each rule's time)
#        (defaults 1000, 5, "prometheus victoria-metrics")
set -euo pipefail
cd "$(dirname "$0")/.."
hosts=${1:-1000}
rounds=${2:-5}
stores=${3:-prometheus victoria-metrics}
cargo build --locked --release --quiet
cro=$PWD/target/release/cro
rules=$PWD/examples/prometheus-rules.yml
work=$(mktemp -d /tmp/cro-fleet-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ms() { date +%s%3N; }
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
wait_until() { # SECONDS WHAT COMMAND...: until COMMAND succeeds
  local limit=$1 what=$2; shift 2
  for _ in $(seq $((limit * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "bench/fleet.sh: gave up waiting for $what" >&2; return 1
}

now=$(date +%s)
python3 - "$hosts" "$now" > "$work/series.om" <<'EOF'
import random, sys
hosts, now = int(sys.argv[1]), int(sys.argv[2])
random.seed(7)
times = [now - 3600 + 60 * i for i in range(61)]
names = [f"web-{i:05d}.example:9477" for i in range(hosts)]
res = [("cpu", ""), ("memory", ""), ("disk", "/data")]
# per host: how it stands (most compliant, some at risk, a few not on track)
state = {h: random.choices(["ok", "risk", "miss"], [90, 8, 2])[0] for h in names}
# figures that differ from host to host, as they do in a fleet
window = {h: round(random.uniform(0.26, 0.45) if state[h] == "ok" else random.uniform(0.05, 0.24), 5) for h in names}
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
family("cro_window_ratio", per_res(lambda h, r: [(',statistic="mean"', window[h])]))
family("cro_window_coverage_ratio", per_res(lambda h, r: [("", 0.95)]))
family("cro_compliant", per_res(lambda h, r: [("", 1 if state[h] == "ok" else 0)]))
family("cro_forecast_on_track", per_res(lambda h, r: [("", 0 if state[h] == "miss" else 1)]))
family("cro_forecast_organic_ratio", per_res(lambda h, r: [("", 0.12)]))
family("cro_level_ratio", per_res(lambda h, r: [("", 0.27)]))
family("cro_utilization_ratio", per_res(lambda h, r: [(',source="organic"', 0.12), (',source="synthetic"', 0.15)]))
family("cro_synthetic_cost", per_res(lambda h, r: [(',unit="cpu-core-hours"' if r == "cpu" else ',unit="gib-hours"', round(window[h] * 500, 3))]))
family("cro_synthetic_cost_share_ratio", per_res(lambda h, r: [("", 0.15)]))
family("cro_ballast_bytes", lambda h: [('{instance="%s",job="cro",resource="memory",mount=""}' % h, 1 << 30)])
family("cro_workers", lambda h: [('{instance="%s",job="cro"}' % h, 3)])
print("# TYPE cro_last_reconcile_timestamp_seconds gauge")
for h in names:
    for t in times:
        print(f'cro_last_reconcile_timestamp_seconds{{instance="{h}",job="cro"}} {t - 20} {t}')
host = lambda name, f: family(name, lambda h: [('{instance="%s",job="cro"}' % h, f(h))])
host("cro_config_valid", lambda h: 1)
host("cro_paused", lambda h: 0)
family("cro_build_info", lambda h: [('{instance="%s",job="cro",version="0.1.0"}' % h, 1)])
family("up", lambda h: [('{instance="%s",job="cro"}' % h, 1)])
print("# EOF")
EOF
series=$(grep -v '^#' "$work/series.om" | cut -d' ' -f1 | sort -u | wc -l)
samples=$(grep -vc '^#' "$work/series.om")
echo "generated: $hosts hosts, $series series ($((series / hosts)) a host), $samples samples ($(du -h "$work/series.om" | cut -f1))"

# the queries cro asks, read from its source
queries() { # recorded|raw
  python3 - "$1" <<'EOF'
import re, sys
s = open("src/fleet/view.rs").read()
c = lambda name: re.search(name + r': &str =\s*"(.*?)";', s, re.S).group(1).replace('\\"', '"')
arr = re.search(("RECORDED" if sys.argv[1] == "recorded" else "RAW") + r'_QUERIES: \[&str; \d\] = \[(.*?)\];', s, re.S).group(1)
qs = [q.replace('\\"', '"') for q in re.findall(r'"((?:[^"\\]|\\.)*)"', arr)]
qs += [c("SEEN_QUERY")] + ([c("LAST_PASS_QUERY")] if sys.argv[1] == "recorded" else [c("UP_QUERY")])
print("\n".join(qs))
EOF
}
recorded_q=() raw_q=()
mapfile -t recorded_q < <(queries recorded) && [ ${#recorded_q[@]} = 7 ] \
  || { echo "bench/fleet.sh: cannot read the recorded queries from src/fleet/view.rs" >&2; exit 1; }
mapfile -t raw_q < <(queries raw) && [ ${#raw_q[@]} = 5 ] \
  || { echo "bench/fleet.sh: cannot read the raw queries from src/fleet/view.rs" >&2; exit 1; }
ask() { # URL QUERY: one instant query as of T, the answer read whole and dropped
  curl -sf -G "$1/api/v1/query" --data-urlencode "query=$2" --data-urlencode "time=$now" >/dev/null
}
side_by_side() { # URL QUERY...: every query at once, as cro asks them
  local url=$1; shift
  local ps=()
  for q in "$@"; do ask "$url" "$q" & ps+=($!); done
  for p in "${ps[@]}"; do wait "$p"; done
}

declare -A url pid
for store in $stores; do
  port=$(free_port)
  url[$store]=http://127.0.0.1:$port
  case $store in
  prometheus)
    t0=$(ms)
    promtool tsdb create-blocks-from openmetrics "$work/series.om" "$work/prom" >/dev/null
    echo "prometheus: backfilled in $(( ($(ms) - t0) / 1000 )) s"
    printf 'global: { evaluation_interval: 1m }\nscrape_configs: []\n' > "$work/prometheus.yml"
    start_prometheus() {
      prometheus --config.file="$work/prometheus.yml" --storage.tsdb.path="$work/prom" \
        --web.listen-address=127.0.0.1:$port >>"$work/prometheus.log" 2>&1 &
      pid[prometheus]=$!; pids+=($!)
      wait_until 120 "Prometheus" curl -sf "${url[prometheus]}/-/ready"
    }
    start_prometheus
    t0=$(ms)
    promtool tsdb create-blocks-from rules --quiet --url="${url[prometheus]}" \
      --start=$((now - 600)) --end=$((now + 60)) --eval-interval=60s \
      --output-dir="$work/prom-rules" "$rules" >/dev/null 2>&1
    kill "${pid[prometheus]}"; wait "${pid[prometheus]}" || true
    mv "$work"/prom-rules/* "$work/prom/"
    start_prometheus
    echo "prometheus: the rules backfilled in $(( ($(ms) - t0) / 1000 )) s"
    ;;
  victoria-metrics)
    # the raw view of 20,000 hosts selects 300,000 series in one query: past the
    # default -search.maxUniqueTimeseries (300,000) of this version
    victoria-metrics -httpListenAddr=127.0.0.1:$port -storageDataPath="$work/vm" \
      -search.maxUniqueTimeseries=5000000 >"$work/vm.log" 2>&1 &
    pid[$store]=$!; pids+=($!)
    wait_until 60 "VictoriaMetrics" curl -sf "${url[$store]}/health"
    t0=$(ms)
    # the text format's timestamps are milliseconds; posted in pieces of 500,000 lines
    grep -v '^#' "$work/series.om" | awk '{ $3 = $3 "000"; print }' \
      | split -l 500000 - "$work/vm-import."
    for f in "$work"/vm-import.*; do
      curl -sf --data-binary @"$f" "${url[$store]}/api/v1/import/prometheus"; rm "$f"
    done
    curl -sf "${url[$store]}/internal/force_flush"
    echo "victoria-metrics: imported in $(( ($(ms) - t0) / 1000 )) s"
    t0=$(ms)
    rfc() { date -u -d "@$1" +%Y-%m-%dT%H:%M:%SZ; }
    vmalert -rule="$rules" -datasource.url="${url[$store]}" -remoteWrite.url="${url[$store]}" \
      -replay.timeFrom="$(rfc $((now - 600)))" -replay.timeTo="$(rfc $((now + 60)))" \
      -replay.disableProgressBar >"$work/vmalert.log" 2>&1
    curl -sf "${url[$store]}/internal/force_flush"
    echo "victoria-metrics: the rules replayed in $(( ($(ms) - t0) / 1000 )) s"
    ;;
  esac
done
rm "$work/series.om"

for store in $stores; do
  # the same view from the recorded series and from the raw ones, to the last figure
  "$cro" fleet --prometheus "${url[$store]}" --at "$now" --json --source recorded > "$work/recorded.json"
  "$cro" fleet --prometheus "${url[$store]}" --at "$now" --json --source raw > "$work/raw.json"
  python3 - "$work/recorded.json" "$work/raw.json" "$hosts" "$store" <<'EOF'
import json, sys
def load(p):
    f = json.load(open(p))
    f.pop("source")
    return f
rec, raw = load(sys.argv[1]), load(sys.argv[2])
assert rec["hosts_by_state"]["hosts"] == int(sys.argv[3]), rec["hosts_by_state"]
def first_difference(x, y, at=""):
    if isinstance(x, dict) and isinstance(y, dict):
        for k in sorted(set(x) | set(y)):
            d = first_difference(x.get(k), y.get(k), f"{at}.{k}")
            if d: return d
    elif isinstance(x, list) and isinstance(y, list) and len(x) == len(y):
        for n, (u, v) in enumerate(zip(x, y)):
            d = first_difference(u, v, f"{at}[{n}]")
            if d: return d
    elif x != y:
        return f"{at}: recorded {x!r}, raw {y!r}"
assert rec == raw, "the recorded view differs from the raw view: " + first_difference(rec, raw)
print(f"{sys.argv[4]}: the recorded view is the raw view;", rec["hosts_by_state"],
      "worst:", rec["hosts"][0]["instance"], rec["hosts"][0]["state"])
EOF
done

a=() b=() c=() d=()
for r in $(seq "$rounds"); do
  line="round $r:"
  for store in $stores; do
    u=${url[$store]}
    s=$(ms); "$cro" fleet --prometheus "$u" --at "$now" --json >/dev/null; e=$(ms); a+=("$store $((e - s))")
    s=$(ms); side_by_side "$u" "${recorded_q[@]}"; e=$(ms); b+=("$store $((e - s))")
    s=$(ms); "$cro" fleet --prometheus "$u" --at "$now" --json --source raw >/dev/null; e=$(ms); c+=("$store $((e - s))")
    s=$(ms); side_by_side "$u" "${raw_q[@]}"; e=$(ms); d+=("$store $((e - s))")
    n=${#a[@]}
    line+="  $store: cro ${a[n-1]#* } ms, store alone ${b[n-1]#* } ms, raw: cro ${c[n-1]#* } ms, store alone ${d[n-1]#* } ms;"
  done
  echo "$line"
done
of() { local s=$1; shift; for x in "$@"; do [ "${x% *}" = "$s" ] && echo "${x#* }"; done; }
echo
echo "median of $rounds rounds, $hosts hosts (goal: cro fleet --json under 2000 ms at 10,000 hosts):"
for store in $stores; do
  printf '  %-17s recorded series: cro fleet %5s ms, the store alone %5s ms | raw series: cro fleet %5s ms, the store alone %5s ms\n' \
    "$store" "$(median $(of "$store" "${a[@]}"))" "$(median $(of "$store" "${b[@]}"))" \
    "$(median $(of "$store" "${c[@]}"))" "$(median $(of "$store" "${d[@]}"))"
done
echo
for store in $stores; do
  echo "$store: cro fleet --timings (recorded series):"
  "$cro" fleet --prometheus "${url[$store]}" --at "$now" --json --timings 2>&1 >/dev/null | sed 's/^/  /'
  peak=$(python3 -c 'import resource, subprocess, sys
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)' "$cro" fleet --prometheus "${url[$store]}" --at "$now" --json)
  rss=$(awk '/VmRSS/ {print int($2 / 1024)}' "/proc/${pid[$store]}/status")
  echo "  cro fleet --json's peak memory: $peak MiB; $store's resident memory: $rss MiB"
done
# what one evaluation of the rules costs each store: every rule's expression as an
# instant query at T, one after the other (as a rule group runs them)
mapfile -t rule_exprs < <(python3 -c '
import sys, yaml
for g in yaml.safe_load(open(sys.argv[1]))["groups"]:
    for r in g["rules"]:
        print(g["name"] + "\t" + " ".join(r["expr"].split()))' "$rules")
for store in $stores; do
  declare -A by_group=()
  for line in "${rule_exprs[@]}"; do
    g=${line%%$'\t'*}; q=${line#*$'\t'}
    s=$(ms); ask "${url[$store]}" "$q"; e=$(ms)
    by_group[$g]=$(( ${by_group[$g]:-0} + e - s ))
    [ -n "${RULE_TIMES:-}" ] && echo "  $store: $((e - s)) ms: ${q:0:100}"
  done
  for g in "${!by_group[@]}"; do echo "$store: rule group $g: ${by_group[$g]} ms an evaluation"; done
  unset by_group
done
