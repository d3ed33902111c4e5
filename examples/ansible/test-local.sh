#!/usr/bin/env bash
# Run the playbook against this machine (connection: local) into a scratch prefix, twice:
# the first run changes things, the second changes nothing; then a bad target must be
# refused by `cro validate` and leave the file in place. Installs ansible-core from PyPI
# into a throwaway virtualenv. The service tasks are skipped (no systemd as PID 1 in CI).
#   bash examples/ansible/test-local.sh [path/to/cro]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cro=$(realpath "${1:-$here/../../target/debug/cro}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q ansible-core >/dev/null
export ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_INVENTORY_UNPARSED_WARNING=False ANSIBLE_NOCOLOR=1
run() {
  "$work/venv/bin/ansible-playbook" -i localhost, -c local "$here/playbook.yml" \
    -e cro_hosts=localhost -e cro_become=false -e cro_manage_service=false \
    -e "ansible_python_interpreter=$work/venv/bin/python" \
    -e "cro_binary=$cro" -e "cro_bin_dir=$work/bin" -e "cro_etc=$work/etc" "$@"
}
mkdir -p "$work/bin"
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
echo "ansible ok: installs, is idempotent, refuses an invalid desired state"
