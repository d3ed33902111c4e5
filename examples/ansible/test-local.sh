#!/usr/bin/env bash
# Run the role against this machine (connection: local) into a scratch prefix:
#  - from the binary, twice: the first run changes things, the second nothing;
#  - a bad target is refused by `cro validate` and leaves the file in place;
#  - the variables (paused, interval, window, textfile directory) reach the desired state
#    and the unit files;
#  - from the portable tarball (when packaging/build.sh has made one);
#  - the uninstall play: `cro recover` stops the workers a pass started, then the files go.
# ansible-core is pinned below 2.17, the last that manages CentOS 7's Python 2.7 and
# CentOS 8's 3.6. Installed from PyPI into a throwaway virtualenv. The service tasks are
# skipped (no systemd as PID 1 in CI); the package install is syntax-checked only (it
# would install on this machine: packaging/check.sh installs and purges the .deb itself).
#   bash examples/ansible/test-local.sh [path/to/cro]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cro=$(realpath "${1:-$here/../../target/debug/cro}")
work=$(mktemp -d)
cleanup() {
  [ -x "$work/bin/cro" ] && CRO_RUN_DIR="$work/run" "$work/bin/cro" --state-dir "$work/state" recover >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q 'ansible-core>=2.16,<2.17' >/dev/null
export ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_INVENTORY_UNPARSED_WARNING=False ANSIBLE_NOCOLOR=1
export CRO_RUN_DIR="$work/run"
play() {
  local book=$1; shift
  "$work/venv/bin/ansible-playbook" -i localhost, -c local "$here/$book" \
    -e cro_hosts=localhost -e cro_become=false \
    -e "ansible_python_interpreter=$work/venv/bin/python" \
    -e "cro_binary=$cro" -e "cro_bin_dir=$work/bin" -e "cro_etc=$work/etc" \
    -e "cro_state_dir=$work/state" -e "cro_unit_dir=$work/units" -e "cro_prefix=$work/opt" "$@"
}
run() { play playbook.yml -e cro_manage_service=false "$@"; }
mkdir -p "$work/bin" "$work/units"
recap() { grep -E '^localhost' | sed 's/  */ /g'; }
first=$(run -e cro_cpu_target=25 | recap)
echo "first run:  $first"
echo "$first" | grep -q 'changed=[1-9]' || { echo "the first run changed nothing" >&2; exit 1; }
second=$(run -e cro_cpu_target=25 | recap)
echo "second run: $second"
echo "$second" | grep -q 'changed=0' || { echo "the second run changed something" >&2; exit 1; }
before=$(cat "$work/etc/desired.json")
if run -e cro_cpu_target=500 >"$work/bad.log" 2>&1; then
  echo "a target of 500 % was accepted" >&2; exit 1
fi
grep -q "cpu.target_percent" "$work/bad.log" || { echo "the refusal does not name the field:" >&2; cat "$work/bad.log" >&2; exit 1; }
[ "$(cat "$work/etc/desired.json")" = "$before" ] || { echo "a refused file replaced the good one" >&2; exit 1; }
"$cro" validate "$work/etc/desired.json" >/dev/null
# the variables reach the desired state and the units (the service itself is not started)
play playbook.yml -e cro_manage_service=true -e cro_mode=none -e cro_paused=true \
  -e cro_interval_seconds=30 -e cro_window_days=7 -e cro_first_window=defer -e "cro_textfile_dir=$work/textfile" >/dev/null
v=$("$cro" validate --json "$work/etc/desired.json")
python3 - "$v" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
assert r["paused"] is True and r["interval_seconds"] == 30 and r["window_days"] == 7 and r["first_window"] == "defer", r
PY
grep -q "^ExecStart=$work/bin/cro --state-dir $work/state --desired $work/etc/desired.json reconcile --textfile-dir $work/textfile$" "$work/units/cro.service" \
  || { echo "the unit does not carry the paths and --textfile-dir:" >&2; grep ExecStart "$work/units/cro.service" >&2; exit 1; }
grep -q "reconcile --once --textfile-dir $work/textfile$" "$work/units/cro-reconcile.service" \
  || { echo "the timer's unit does not carry --textfile-dir" >&2; exit 1; }
"$work/venv/bin/ansible-playbook" --syntax-check -i localhost, "$here/playbook.yml" -e cro_install_from=package >/dev/null
tarball=$(ls "$here"/../../target/dist/cro-*-x86_64-linux.tar.gz 2>/dev/null | head -1 || true)
if [ -n "$tarball" ]; then
  rm -f "$work/bin/cro"
  run -e cro_install_from=tarball -e "cro_tarball=$(realpath "$tarball")" >/dev/null
  [ -L "$work/bin/cro" ] && "$work/bin/cro" --version >/dev/null || { echo "the tarball install gave no working cro" >&2; exit 1; }
  echo "tarball install ok: $(basename "$tarball")"
fi
# uninstall: a pass has workers running; the play recovers, then removes everything
run -e cro_paused=false -e cro_cpu_target=0 -e cro_memory_target=0 >/dev/null
"$work/bin/cro" --state-dir "$work/state" --desired "$work/etc/desired.json" reconcile --once >/dev/null
pgrep -f "$work/state/jobs" >/dev/null || { echo "the pass started no workers" >&2; exit 1; }
play uninstall.yml -e cro_manage_service=false -e "cro_install_from=${tarball:+tarball}${tarball:-binary}" >/dev/null
if pgrep -f "$work/state/jobs" >/dev/null; then echo "workers left after the uninstall play" >&2; exit 1; fi
for p in "$work/bin/cro" "$work/etc" "$work/state" "$work/opt"; do
  [ ! -e "$p" ] || { echo "$p left after the uninstall play" >&2; exit 1; }
done
echo "ansible ok: installs (binary${tarball:+, tarball}), is idempotent, refuses an invalid desired state, carries its variables, uninstalls after recover"
