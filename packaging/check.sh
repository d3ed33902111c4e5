#!/usr/bin/env bash
# CI's packaging checks, on what packaging/build.sh wrote to target/dist/:
#  - the portable binary needs at most GLIBC_2.17 (build.sh fails above that too);
#  - the tarball has the binary, man page, completions, units, example, docs, licences;
#  - the .deb installs (a packaged `cro status` typed in / shows /var/lib/cro and
#    /etc/cro/desired.json), and purges to nothing: no file, no state, no configuration;
#  - the .rpm lists what it should (rpm -qlp) and stops the load before an erase;
#  - the portable binary under tests/tools/oldkernel.py --no-psi (a 3.10 kernel without
#    PSI) holds CPU, memory and a tmpfs disk target, and recover leaves nothing.
# Runs as root on a throwaway machine (CI): it installs and purges a package.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
DIST=target/dist
TAR="$DIST/cro-$VERSION-x86_64-linux.tar.gz"
DEB="$DIST/cro_${VERSION}-1_amd64.deb"
RPM="$DIST/cro-$VERSION-1.x86_64.rpm"
fail() { echo "packaging/check.sh: $*" >&2; exit 1; }

BIN="$(mktemp -d)"
trap 'rm -rf "$BIN"' EXIT
tar -C "$BIN" -xzf "$TAR"
T="$BIN/cro-$VERSION-x86_64-linux"
for f in cro cro.1.gz systemd/cro.service systemd/cro-reconcile.timer completions/cro.bash \
         examples/desired.json README.md LICENSE-MIT LICENSE-APACHE; do
  [ -e "$T/$f" ] || fail "the tarball has no $f"
done
need="$(objdump -T "$T/cro" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)"
[ "$(printf '%s\n2.17\n' "$need" | sort -V | tail -1)" = 2.17 ] || fail "needs GLIBC_$need"
echo "tarball ok; the portable binary needs at most GLIBC_$need"

# .deb: install, use, purge.
dpkg -i "$DEB" >/dev/null
out="$(cd / && cro status 2>&1)" || fail "packaged cro status failed: $out"
grep -q "/etc/cro/desired.json" <<<"$out" || fail "packaged status does not use /etc/cro/desired.json: $out"
[ -d /var/lib/cro ] && [ "$(stat -c %a /var/lib/cro)" = 700 ] || fail "/var/lib/cro is not a 0700 directory"
cro validate >/dev/null || fail "the packaged desired state does not validate"
dpkg --purge cro >/dev/null
for p in /usr/bin/cro /etc/cro /var/lib/cro /usr/lib/systemd/system/cro.service /usr/share/man/man1/cro.1.gz; do
  [ ! -e "$p" ] || fail "$p is left after dpkg --purge"
done
echo "deb ok: installed, packaged defaults in force, purged to nothing"

# .rpm: its file list and its erase script.
files="$(rpm -qlp "$RPM" 2>/dev/null)"
for p in /usr/bin/cro /etc/cro/desired.json /usr/lib/systemd/system/cro.service \
         /usr/lib/systemd/system/cro-reconcile.timer /usr/share/man/man1/cro.1.gz /var/lib/cro; do
  grep -qx "$p" <<<"$files" || fail "the rpm does not install $p"
done
rpm -qp --scripts "$RPM" 2>/dev/null | grep -q "cro --state-dir /var/lib/cro --desired /etc/cro/desired.json recover" \
  || fail "the rpm's erase script does not recover"
rpm -qp --configfiles "$RPM" 2>/dev/null | grep -qx /etc/cro/desired.json || fail "desired.json is not a config file"
echo "rpm ok: $(wc -l <<<"$files") paths; desired.json kept on upgrade; erase recovers first"

# The portable binary on an old kernel without PSI, holding all three resources.
S="$(mktemp -d)"
M="$S/disk"
mkdir -p "$M" && mount -t tmpfs -o size=64m,mode=0700 tmpfs "$M"
cleanup() {
  "$T/cro" --state-dir "$S/state" recover >/dev/null 2>&1 || true
  umount "$M" 2>/dev/null || true
  rm -rf "$S" "$BIN"
}
trap cleanup EXIT
used_mib() { awk '/MemTotal/{t=$2}/MemAvailable/{a=$2}END{print int((t-a)/1024)}' /proc/meminfo; }
total_mib="$(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo)"
mem_pct="$(awk -v u="$(used_mib)" -v t="$total_mib" 'BEGIN{printf "%.2f", (u+200)/t*100}')"
cat > "$S/desired.json" <<JSON
{"version":1,"interval_seconds":60,
 "cpu":{"target_percent":30},
 "memory":{"target_percent":$mem_pct,"min_available_percent":5},
 "disk":{"target_percent":50,"min_free_gib":0,"mounts":["$M"]}}
JSON
old() { CRO_RUN_DIR="$S/run" /usr/bin/python3 tests/tools/oldkernel.py --no-psi \
          "$T/cro" --state-dir "$S/state" --desired "$S/desired.json" "$@"; }
old reconcile --once >/dev/null
ok=""
for _ in $(seq 1 60); do
  st="$(old status --json)"
  if python3 - "$st" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
r = s["resources"]
alive = [j for j in s["jobs"] if j["alive"]]
disk = list(r["disk"].values())[0]
ok = (len(alive) == 3 and r["memory"]["synthetic_percent"] > 0.4
      and disk["total_percent"] >= 45 and r["cpu"]["level_percent"] > 0
      and s["host"]["memory_psi"] is False)
sys.exit(0 if ok else 1)
PY
  then ok=1; break; fi
  sleep 1
done
[ -n "$ok" ] || fail "under oldkernel.py the levels were not reached: $st"
old status | grep -q "memory pressure (PSI): not reported" || fail "status does not say PSI is missing"
busy() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
read -r b0 t0 < <(busy); sleep 3; read -r b1 t1 < <(busy)
cpu="$(awk -v a="$b0" -v b="$b1" -v c="$t0" -v d="$t1" 'BEGIN{printf "%.0f", (b-a)/(d-c)*100}')"
[ "$cpu" -ge 15 ] || fail "the cpu worker under oldkernel.py holds only $cpu % (target 30)"
old recover >/dev/null
pgrep -f "$S/state/jobs" >/dev/null && fail "workers left after recover"
[ -z "$(ls -A "$M/.cro-ballast" 2>/dev/null)" ] || fail "ballast left after recover"
echo "old kernel ok: cpu $cpu % (target 30), memory and disk levels held without PSI or pidfd; recover clean"
