#!/usr/bin/env bash
# CI's end-to-end checks of cro.exe (x86_64 Windows), run under Wine in the cross chroot
# (packaging/cross.sh), each judged by this script, not by cro:
#  - the .exe is a PE32+ x86-64 program that needs only Windows' own DLLs;
#  - `status --json` on the built-in default names the platform "windows" and the host's
#    memory and CPUs as Linux reports them to Wine (/proc/meminfo, nproc); `plan` on the
#    built-in default targets this host's memory tier with a CPU and a memory worker;
#  - two passes of `reconcile --once` (paused) with one CPU kept busy in between by this
#    script: the history records the CPU and memory utilization this script measured
#    itself (/proc/stat, /proc/meminfo over the same interval), within a tolerance for
#    Wine's start-up between the readings; `--textfile-dir` writes a file promtool accepts;
#  - unpaused, a pass starts the workers: the CPU held near its target (measured here
#    from /proc/stat), a memory ballast of about 200 MiB filled, then given back whole
#    when the target drops below what is in use; a volume D: (a 64 MiB tmpfs Wine shows as
#    D:\) padded to half full by files in D:\.cro-ballast\; status shows the idle
#    priority class;
#  - every file of the bad-input corpus (tests/bad-desired/) is refused with exit 78,
#    naming the file and the field, as on Linux;
#  - `recover` leaves no job behind;
#  - `reconcile --service` typed in a console is refused (exit 2);
#  - the zip holds this cro.exe, install.ps1, uninstall.ps1 (which recovers before it
#    removes anything), README.txt and a valid desired.example.json;
#  - the MSI installs under Wine's msiexec: its service runs under Wine's service control
#    manager, makes a pass and starts the CPU worker; `cro status` with no options finds
#    it (the build's defaults are the MSI's folders); the uninstall stops the service and
#    runs `cro recover` before removing the program (no worker or job file left, the
#    history kept).
# What Wine cannot prove (priority classes, the real service control manager's timing,
# PowerShell, NTFS) is said in the README's platform paragraph.
#
#   bash packaging/check-windows.sh [CRO_EXE]   (default target/windows/debug/cro.exe)
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
EXE=${1:-target/windows/debug/cro.exe}
fail() { echo "packaging/check-windows.sh: $*" >&2; exit 1; }
[ -f "$EXE" ] || fail "$EXE is missing (bash packaging/cross.sh build-windows debug)"

W="$(mktemp -d /tmp/cro-windows.XXXXXX)"
cleanup() {
  if [ -n "${burner:-}" ]; then kill "$burner" 2>/dev/null || true; fi
  # every Windows program still running (a worker, if a check failed) ends with Wine
  bash packaging/cross.sh wine-stop --bind "$W" --drive "D:$W/disk" || true
  if mountpoint -q "$W/disk"; then umount "$W/disk" || umount -l "$W/disk"; fi
  rm -rf "$W"
}
trap cleanup EXIT
cp "$EXE" "$W/cro.exe"
mkdir -p "$W/disk"
mount -t tmpfs -o size=64m,mode=0755 tmpfs "$W/disk"
zp() { printf 'Z:%s' "$1" | tr / '\\'; } # a host path as Windows programs see it
S="$(zp "$W/state")"
D="$(zp "$W/desired.json")"
# cro.exe under Wine with $W visible, Wine left running for the workers it starts (until
# cleanup's wine-stop); its stderr goes to $W/err.
win() {
  bash packaging/cross.sh wine --keep --bind "$W" --drive "D:$W/disk" "$W/cro.exe" "$@" 2>"$W/err"
}

# The program itself: PE32+ for x86-64, and the DLLs it names are Windows' own.
python3 - "$W/cro.exe" <<'EOF' || fail "cro.exe is not a PE32+ x86-64 program"
import struct, sys
b = open(sys.argv[1], "rb").read(4096)
pe = struct.unpack_from("<I", b, 0x3C)[0]
assert b[:2] == b"MZ" and b[pe:pe + 4] == b"PE\0\0", "no PE header"
machine, = struct.unpack_from("<H", b, pe + 4)
magic, = struct.unpack_from("<H", b, pe + 24)
assert machine == 0x8664 and magic == 0x20B, (hex(machine), hex(magic))
EOF
dlls="$(strings -a "$W/cro.exe" | grep -ioE '^[a-z0-9_.-]+\.dll$' | tr 'A-Z' 'a-z' | sort -u | tr '\n' ' ')"
for d in $dlls; do
  case "$d" in
    kernel32.dll | ntdll.dll | msvcrt.dll | ws2_32.dll | advapi32.dll | bcrypt.dll | bcryptprimitives.dll | \
      userenv.dll | api-ms-win-*.dll | user32.dll | shell32.dll | ole32.dll | secur32.dll | crypt32.dll | ucrtbase.dll) ;;
    *) fail "cro.exe needs $d, which Windows does not have" ;;
  esac
done
echo "windows exe ok: PE32+ x86-64, $(stat -c %s "$W/cro.exe") bytes, DLLs: $dlls"

[ "$(win --version | tr -d '\r')" = "cro $VERSION" ] || fail "cro.exe --version: $(cat "$W/err")"

# The host as cro sees it on Windows.
win status --json --state-dir "$S" >"$W/status.json" || fail "status: $(cat "$W/err")"
python3 - "$W/status.json" "$(nproc)" <<'EOF' || fail "status --json does not describe this host"
import json, sys
h = json.load(open(sys.argv[1]))["host"]
mem = dict(l.split(":", 1) for l in open("/proc/meminfo"))
total = int(mem["MemTotal"].split()[0]) * 1024
assert h["platform"] == "windows", h["platform"]
assert abs(h["memory_total_bytes"] - total) <= total * 0.02, (h["memory_total_bytes"], total)
assert h["cpus"] == int(sys.argv[2]), (h["cpus"], sys.argv[2])
assert h["cgroup"]["version"] == "none", h
print(f"windows status ok: {h['os']}, {h['memory_total_bytes']} bytes, {h['cpus']} CPUs")
EOF

# A pass on the built-in default, as planned (`plan` decides as `reconcile` does and
# changes nothing: the default's memory target would hold gigabytes of this machine): the
# tier for this host's memory, a CPU and a memory job, no disk until one is listed.
win plan --json --state-dir "$S" >"$W/plan.json" || fail "plan: $(cat "$W/err")"
python3 - "$W/plan.json" "$W/status.json" <<'EOF' || fail "the built-in default's plan is not this host's"
import json, sys
p, host = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))["host"]
# the default's tiers: 25 % below 16 GiB of memory, 40 % from 16 GiB
tier = 40.0 if host["memory_tier_gib"] >= 16 else 25.0
jobs = {j["id"]: j for j in p["jobs"]}
assert sorted(jobs) == ["cpu", "memory"], sorted(jobs)
assert all(j["target_percent"] == tier for j in jobs.values()), (tier, jobs)
starts = sorted(a["id"] for a in p["actions"] if a["action"] == "start")
assert starts == ["cpu", "memory"], p["actions"]
print(f"windows default ok: targets {tier} % for this host's memory, workers cpu and memory planned")
EOF

# Two passes, paused (nothing synthetic), with one CPU busy in between; cro's readings
# against this script's own.
stat() { awk '/^cpu /{b=$2+$3+$4+$7+$8+$9; print b, b+$5+$6; exit}' /proc/stat; }
used_mib() { awk '/MemTotal/{t=$2}/MemAvailable/{a=$2}END{print int((t-a)/1024)}' /proc/meminfo; }
total_mib="$(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo)"
mem_pct="$(awk -v u="$(used_mib)" -v t="$total_mib" 'BEGIN{printf "%.2f", (u+200)/t*100}')"
desired() { # desired PAUSED MEMORY_TARGET
  printf '{"version":1,"paused":%s,"interval_seconds":60,"cpu":{"target_percent":30},"memory":{"target_percent":%s,"min_available_percent":5},"disk":{"target_percent":50,"min_free_gib":0,"mounts":["D:\\\\"]}}\n' \
    "$1" "$2" >"$W/desired.json"
}
desired true "$mem_pct"
win reconcile --once --state-dir "$S" --desired "$D" >/dev/null || fail "pass 1: $(cat "$W/err")"
read -r b0 t0 < <(stat)
( exec timeout 6 sh -c 'while :; do :; done' ) &
burner=$!
wait "$burner" || true
burner=
win reconcile --once --state-dir "$S" --desired "$D" --textfile-dir "$(zp "$W")" >/dev/null \
  || fail "pass 2: $(cat "$W/err")"
read -r b1 t1 < <(stat)
own_cpu=$(( (b1 - b0) * 100 / (t1 - t0) ))
own_mem=$(awk '/^MemTotal/{t=$2} /^MemAvailable/{a=$2} END{printf "%.1f", (t-a)*100/t}' /proc/meminfo)
python3 - "$W/state/history" "$own_cpu" "$own_mem" <<'EOF' || fail "the history disagrees with this host"
import glob, json, sys
recs = [json.loads(l) for f in sorted(glob.glob(sys.argv[1] + "/*.jsonl")) for l in open(f)]
assert len(recs) == 2, f"{len(recs)} history records, not 2"
r = recs[-1]
cpu, mem = r["cpu"]["total"], r["memory"]["total"]
own_cpu, own_mem = float(sys.argv[2]), float(sys.argv[3])
print(f"windows readings: cpu {cpu} % (this script: {own_cpu} %), memory {mem} % ({own_mem} %), over {r['interval_s']} s")
assert cpu >= 35 and abs(cpu - own_cpu) <= 15, "cpu"
assert abs(mem - own_mem) <= 3, "memory"
EOF
[ -s "$W/cro.prom" ] || fail "--textfile-dir wrote no cro.prom"
promtool check metrics <"$W/cro.prom" || fail "promtool refuses cro.prom"
echo "windows textfile ok: $(grep -c '^cro_' "$W/cro.prom") samples"

# Unpaused: the workers start, the CPU is held (measured here), the memory ballast fills.
desired false "$mem_pct"
win reconcile --once --state-dir "$S" --desired "$D" >/dev/null || fail "pass 3: $(cat "$W/err")"
look() { win status --json --state-dir "$S" --desired "$D" >"$W/st.json" || fail "status: $(cat "$W/err")"; }
ballast() {
  python3 -c 'import json, sys
j = [j for j in json.load(open(sys.argv[1]))["jobs"] if j["id"] == "memory"][0]
print(j.get("ballast_bytes") or 0, j.get("ballast_target_bytes") or 0, int(j["alive"]))' "$W/st.json"
}
for _ in $(seq 1 60); do
  look
  read -r have want alive < <(ballast)
  [ "$alive" = 1 ] && [ "$want" -gt $((64 << 20)) ] && [ "$have" -ge $((want * 95 / 100)) ] && break
  sleep 1
done
[ "$want" -gt $((64 << 20)) ] && [ "$have" -ge $((want * 95 / 100)) ] \
  || fail "the memory ballast did not fill ($have of $want bytes): $(cat "$W/st.json")"
python3 - "$W/st.json" <<'EOF' || fail "status does not show the cpu worker at idle priority"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["host"]["cpu_placement"]["mode"] == "idle-class", s["host"]["cpu_placement"]
assert [j["alive"] for j in s["jobs"] if j["id"] == "cpu"] == [True], s["jobs"]
EOF
# The CPU held, from /proc/stat: the burners' loop settles within seconds; up to ten
# 3-second looks.
for _ in $(seq 1 10); do
  read -r b0 t0 < <(stat); sleep 3; read -r b1 t1 < <(stat)
  cpu=$(( (b1 - b0) * 100 / (t1 - t0) ))
  [ "$cpu" -ge 22 ] && break
done
[ "$cpu" -ge 22 ] || fail "the cpu worker holds only $cpu % (target 30)"
# The volume D: half full, by ballast files (what df shows of the tmpfs behind it).
for _ in $(seq 1 60); do
  disk=$(df --output=pcent "$W/disk" | tail -1 | tr -dc 0-9)
  [ "$disk" -ge 45 ] && break
  sleep 1
done
[ "$disk" -ge 45 ] || fail "D: is $disk % full (target 50): $(ls -la "$W/disk/.cro-ballast" 2>&1)"
[ -n "$(ls -A "$W/disk/.cro-ballast")" ] || fail "no ballast files in D:\\.cro-ballast"
# Given back: the target drops below what is in use, and every byte of ballast goes.
desired false 0.5
win reconcile --once --state-dir "$S" --desired "$D" >/dev/null || fail "pass 4: $(cat "$W/err")"
for _ in $(seq 1 60); do
  look
  read -r now _ _ < <(ballast)
  [ "$now" -lt $((1 << 20)) ] && break
  sleep 1
done
[ "$now" -lt $((1 << 20)) ] || fail "the memory worker kept $now bytes of ballast"
echo "windows workers ok: cpu $cpu % (target 30, idle priority class), memory ballast $((have >> 20)) MiB filled and given back, D: $disk % (target 50)"

# The bad-input corpus: one Wine session runs cro.exe on every file (a batch file for
# Wine's cmd), then each answer is judged as tests/cli.rs judges Linux's.
mkdir -p "$W/bad" "$W/out"
cp tests/bad-desired/*.json "$W/bad/"
{
  echo "@echo off"
  for f in "$W"/bad/*.json; do
    n=$(basename "$f" .json)
    echo "\"$(zp "$W/cro.exe")\" validate \"$(zp "$f")\" > \"$(zp "$W/out/$n.txt")\" 2>&1"
    echo "echo %ERRORLEVEL% > \"$(zp "$W/out/$n.rc")\""
  done
} | sed 's/$/\r/' >"$W/bad.cmd"
# (Wine's cmd exits with the last program's code, 78 here: each file's is judged below.)
bash packaging/cross.sh wine --bind "$W" cmd /c "$(zp "$W/bad.cmd")" 2>"$W/err" || true
[ -s "$W/out/49-nan-literal.rc" ] || fail "the corpus batch did not finish: $(cat "$W/err")"
checked=0
while IFS=$'\t' read -r f needle; do
  case "$f" in '#'* | '') continue ;; esac
  n=${f%.json}
  rc=$(tr -d '\r ' <"$W/out/$n.rc")
  [ "$rc" = 78 ] || fail "$f: exit $rc, not 78: $(cat "$W/out/$n.txt")"
  grep -qF "$needle" "$W/out/$n.txt" || fail "$f: the message does not name $needle: $(cat "$W/out/$n.txt")"
  grep -qF "$f" "$W/out/$n.txt" || fail "$f: the message does not name the file: $(cat "$W/out/$n.txt")"
  checked=$((checked + 1))
done <tests/bad-desired/expected.tsv
[ "$checked" -ge 40 ] || fail "only $checked corpus files"
echo "windows bad input ok: $checked files refused with exit 78, file and field named"

desired false "$mem_pct"
win reconcile --once --state-dir "$S" --desired "$D" >/dev/null || fail "pass 5: $(cat "$W/err")"
win recover --state-dir "$S" --desired "$D" >/dev/null || fail "recover: $(cat "$W/err")"
left=$(find "$W/state/jobs" -name '*.json' | wc -l)
[ "$left" = 0 ] || fail "recover left $left job files"
[ -z "$(ls -A "$W/disk/.cro-ballast" 2>/dev/null)" ] || fail "recover left ballast on D:"
# No worker of this state directory runs (their command lines name its jobs directory).
jobs_win="$(zp "$W/state/jobs")"
for _ in $(seq 1 50); do
  pgrep -af "cro.exe worker" | grep -qF "$jobs_win" || break
  sleep 0.1
done
if pgrep -af "cro.exe worker" | grep -F "$jobs_win"; then fail "workers left after recover"; fi
echo "windows recover ok: workers started again, then none and no job file"

# `reconcile --service` in a console: refused at once (exit 2), naming the service manager.
rc=0
win reconcile --service --state-dir "$S" --desired "$D" >/dev/null || rc=$?
[ "$rc" = 2 ] && grep -q "service control manager" "$W/err" \
  || fail "reconcile --service in a console: exit $rc: $(cat "$W/err")"

# The packages (packaging/build-windows.sh). The zip holds this cro.exe and its scripts.
ZIP="target/dist/cro-$VERSION-x86_64-windows.zip"
MSI="target/dist/cro-$VERSION-x86_64.msi"
[ -f "$ZIP" ] && [ -f "$MSI" ] || fail "$ZIP or $MSI is missing (bash packaging/build-windows.sh debug)"
python3 - "$ZIP" "$W/cro.exe" "cro-$VERSION-x86_64-windows" <<'EOF' || fail "the zip is not as install.ps1 needs it"
import sys, zipfile
z, exe, top = zipfile.ZipFile(sys.argv[1]), sys.argv[2], sys.argv[3]
names = set(z.namelist())
for f in ["cro.exe", "install.ps1", "uninstall.ps1", "README.txt", "desired.example.json"]:
    assert f"{top}/{f}" in names, f"{f} missing: {sorted(names)}"
assert z.read(f"{top}/cro.exe") == open(exe, "rb").read(), "cro.exe is not this build"
uninstall = z.read(f"{top}/uninstall.ps1").decode()
assert uninstall.index(" recover") < uninstall.index("sc.exe delete"), "uninstall removes before it recovers"
open(sys.argv[2] + ".example.json", "wb").write(z.read(f"{top}/desired.example.json"))
EOF
# The example desired state is valid for Windows as shipped.
win validate --no-mount-check "$(zp "$W/cro.exe.example.json")" >/dev/null \
  || fail "desired.example.json: $(cat "$W/err")"
echo "windows zip ok: cro.exe (this build), install.ps1, uninstall.ps1, README.txt, a valid desired.example.json"

# The MSI, installed by Wine's msiexec: the service "cro" runs (passes with this check's
# desired.json, a CPU worker at 30 %); `cro status` with no options shows it (the
# program's defaults are the MSI's folders); uninstalling stops the service and runs
# `cro recover` before the program goes: no worker, no job file, the history kept.
PFX="${CRO_CROSS_ROOT:-/var/cache/cro-cross}/wineprefix/drive_c"
msi_cleanup() {
  # (a failed check's leftovers: the prefix is kept between runs)
  bash packaging/cross.sh wine --bind "$W" msiexec /x "$(zp "$W/cro.msi")" /qn >/dev/null 2>&1 || true
  rm -rf "$PFX/ProgramData/cro" "$PFX/Program Files/cro"
}
msi_fail() { msi_cleanup; fail "$@"; }
cp "$MSI" "$W/cro.msi"
msi_cleanup
mkdir -p "$PFX/ProgramData/cro"
printf '{"version":1,"cpu":{"target_percent":30},"memory":{"enabled":false},"disk":{"enabled":false}}\n' \
  >"$PFX/ProgramData/cro/desired.json"
{
  echo "@echo off"
  echo "msiexec /i $(zp "$W/cro.msi") /qn /l*v $(zp "$W/install.log")"
  echo "echo %ERRORLEVEL% > $(zp "$W/install.rc")"
  echo "sc query cro > $(zp "$W/query1.txt")"
  # the first pass's worker (its status file, written as it starts), at most 30 s
  echo "for /L %%i in (1,1,30) do ("
  echo "  if exist C:\\ProgramData\\cro\\state\\jobs\\cpu.status.json goto up"
  echo "  ping -n 2 127.0.0.1 >nul"
  echo ")"
  echo ":up"
  echo "ping -n 2 127.0.0.1 >nul"
  echo "\"C:\\Program Files\\cro\\cro.exe\" status --json > $(zp "$W/msi-status.json")"
  echo "msiexec /x $(zp "$W/cro.msi") /qn /l*v $(zp "$W/uninstall.log")"
  echo "echo %ERRORLEVEL% > $(zp "$W/uninstall.rc")"
  echo "sc query cro > $(zp "$W/query2.txt") 2>&1"
} | sed 's/$/\r/' >"$W/msi.cmd"
bash packaging/cross.sh wine --bind "$W" cmd /c "$(zp "$W/msi.cmd")" >/dev/null 2>"$W/err" || true
rc=$(tr -d '\r ' <"$W/install.rc" 2>/dev/null || echo none)
[ "$rc" = 0 ] || msi_fail "msiexec /i: exit $rc: $(tail -20 "$W/install.log" 2>/dev/null)"
grep -q "RUNNING" "$W/query1.txt" || msi_fail "the service does not run: $(cat "$W/query1.txt")"
python3 - "$W/msi-status.json" <<'EOF' || msi_fail "the MSI's service made no pass that started the CPU worker"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["desired"]["path"] == "C:\\ProgramData\\cro\\desired.json", s["desired"]["path"]
assert s["last_reconcile"], "no pass"
cpu = [j for j in s["jobs"] if j["id"] == "cpu"]
assert cpu and cpu[0]["alive"], f"no live cpu worker: {s['jobs']}"
EOF
rc=$(tr -d '\r ' <"$W/uninstall.rc" 2>/dev/null || echo none)
[ "$rc" = 0 ] || msi_fail "msiexec /x: exit $rc"
grep -qa "Action ended.*: Recover. Return value 1" "$W/uninstall.log" \
  || msi_fail "the uninstall did not run cro recover"
if grep -q "RUNNING" "$W/query2.txt"; then msi_fail "the service is still there after the uninstall"; fi
[ ! -e "$PFX/Program Files/cro/cro.exe" ] || msi_fail "the uninstall left cro.exe"
left=$(find "$PFX/ProgramData/cro/state/jobs" -name '*.json' | wc -l)
[ "$left" = 0 ] || msi_fail "the uninstall left $left job files (no recover?)"
ls "$PFX/ProgramData/cro/state/history/"*.jsonl >/dev/null || msi_fail "the uninstall deleted the history"
if pgrep -af "cro.exe worker" | grep -qi "ProgramData"; then msi_fail "a worker outlived the uninstall"; fi
msi_cleanup
echo "windows msi ok: installed, the service ran a pass and started the CPU worker; the uninstall recovered first (no worker, no job file; history kept)"
