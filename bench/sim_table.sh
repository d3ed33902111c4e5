#!/usr/bin/env bash
# The simulation table of docs/SIMULATION.md: every trace x every policy x three rules
# (CPU mean 25 % and mean 40 % over 30 days, CPU p95 20 % over 7 days).
#   bash bench/sim_table.sh > /tmp/table.md
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -q
cro=target/release/cro
echo "| trace | rule | policy | compliant | achieved | cost %·h | minimum %·h | cost ÷ minimum | cost ÷ fill-gap |"
echo "|---|---|---|---|---:|---:|---:|---:|---:|"
for trace in examples/traces/*.csv; do
  for rule in mean25 mean40 p95-20; do
    fill=$("$cro" --desired "examples/sim/$rule.json" simulate --trace "$trace" --policy fill-gap --json)
    for policy in cro fill-gap constant seed; do
      out=$("$cro" --desired "examples/sim/$rule.json" simulate --trace "$trace" --policy "$policy" --json)
      python3 - "$(basename "$trace" .csv)" "$rule" "$policy" "$out" "$fill" <<'PY'
import json, sys
trace, rule, policy, out, fill = sys.argv[1:]
r = json.loads(out)["resources"]["cpu"]; f = json.loads(fill)["resources"]["cpu"]
ratio = lambda a, b: f"{a / b:.3f}" if b > 0 else "-"
print(f"| {trace} | {rule} | {policy} | {'yes' if r['compliant'] else '**no**'} | {r['achieved']:.2f} | {r['cost_percent_hours']:.0f} | {r['minimum_percent_hours']:.0f} | {ratio(r['cost_percent_hours'], r['minimum_percent_hours'])} | {ratio(r['cost_percent_hours'], f['cost_percent_hours'])} |")
PY
    done
  done
done
