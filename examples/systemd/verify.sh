#!/usr/bin/env bash
# Check the unit files with systemd-analyze verify (from Debian's systemd package). The
# units name /usr/local/bin/cro; the check uses copies that point at the built binary.
#   bash examples/systemd/verify.sh [path/to/cro]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cro=$(realpath "${1:-$here/../../target/debug/cro}")
cd "$here"
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not found (apt-get install systemd)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for u in cro.service cro-reconcile.service cro-reconcile.timer; do
  sed "s|/usr/local/bin/cro|$cro|g" "$u" > "$tmp/$u"
done
# man:cro(1) is installed by the package, not here: drop that one complaint
out=$(cd "$tmp" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no ./cro.service ./cro-reconcile.service ./cro-reconcile.timer 2>&1) || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then
  echo "$out" >&2
  echo "systemd-analyze verify printed warnings" >&2
  exit 1
fi
# The daemon's confinement: exposure at most 6.0 on systemd's own scale (9.6 without it).
exposure=$(cd "$tmp" && systemd-analyze security --offline=yes ./cro.service 2>/dev/null \
  | sed -n 's/.*Overall exposure level for cro.service: \([0-9.]*\).*/\1/p')
if [ -z "$exposure" ] || ! awk -v e="$exposure" 'BEGIN { exit !(e <= 6.0) }'; then
  echo "cro.service exposure ${exposure:-unknown} is above 6.0 (systemd-analyze security --offline=yes)" >&2
  exit 1
fi
echo "units ok: cro.service cro-reconcile.service cro-reconcile.timer; cro.service exposure $exposure"
