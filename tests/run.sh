#!/usr/bin/env bash
# The whole test suite, with its own set-up: the README's second command and what CI runs.
#
#   bash tests/run.sh                 set up what is missing, then run everything CI runs
#   bash tests/run.sh --setup-only    set up what is missing, run nothing
#   bash tests/run.sh --check         name what is missing (and the package), change nothing
#
# The suite drives real clients and real kernel features, so it needs more than cargo:
# a tool that is missing is installed (as root, where apt-get exists: Debian, Ubuntu), or
# named with the package that brings it, before any test runs. No test passes because a
# tool is missing: the tests that use one fail with its name when it is not there.
# Root is needed: the disk tests mount small tmpfs and loop filesystems, the CPU tests make
# a cgroup. The measuring tests run alone and serially after the build, so they own the CPUs.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=run
case "${1:-}" in
  "") ;;
  --setup-only) mode=setup ;;
  --check) mode=check ;;
  -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
  *) echo "tests/run.sh: unknown option $1 (--setup-only, --check)" >&2; exit 2 ;;
esac

# The tests run Debian's python (where python3-seccomp puts its module), whatever else is
# first on the PATH (pyenv, a virtualenv).
PY=${CRO_TEST_PYTHON:-/usr/bin/python3}
# What the suite needs beyond cargo: "how to find it|Debian package|what needs it".
needs=(
  "cc|gcc|the linker cargo calls"
  "systemd-analyze|systemd|the unit files' checks (examples/systemd/verify.sh)"
  "promtool|prometheus|metrics, alert and recording rules (cli tests, CI)"
  "prometheus|prometheus|the fleet view against a real Prometheus (tests/fleet.rs)"
  "victoria-metrics|victoria-metrics|the fleet view against VictoriaMetrics and vmalert (tests/fleet.rs)"
  "chromium|chromium|the dashboard rendered in a headless browser (cli tests)"
  "nginx|nginx-light|a real latency-sensitive service next to the burners (tests/measure.rs)"
  "wrk|wrk|nginx's benchmark client (tests/measure.rs)"
  "stress-ng|stress-ng|the peer beside cro in the tail-latency test (tests/measure.rs)"
  "mkfs.ext4|e2fsprogs|the fast writer's loop filesystem (tests/measure.rs)"
  "$PY|python3|tests/tools/oldkernel.py, the Ansible role's test"
  "py:seccomp|python3-seccomp|a 3.10 kernel's system calls (tests/tools/oldkernel.py)"
  "py:ensurepip|python3-venv|virtualenvs for cargo-zigbuild and ansible-core (packaging, Ansible)"
  "rpmbuild|rpm|the .rpm (packaging/build.sh) and its checks"
  "dpkg-deb|dpkg|the .deb (packaging/build.sh) and its install test"
  "readelf|binutils|the binaries' architecture and glibc symbols (packaging/build.sh)"
  "debootstrap|debootstrap|the Debian 13 chroot that builds the ARM and Windows binaries (packaging/cross.sh)"
  "wixl|wixl|the Windows MSI (packaging/build-windows.sh)"
  "qemu-aarch64-static|qemu-user-static|the ARM binary's whole pass, workers included (packaging/check-arm.sh)"
  "f:/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1|libc6-arm64-cross|the C library the ARM binary runs on under qemu"
)

have() {
  case "$1" in
    py:*) [ -x "$PY" ] && "$PY" -c "import ${1#py:}" 2>/dev/null ;;
    f:*) [ -e "${1#f:}" ] ;;
    *) command -v "$1" >/dev/null ;;
  esac
}

missing=() pkgs=()
for n in "${needs[@]}"; do
  IFS='|' read -r tool pkg why <<<"$n"
  if ! have "$tool"; then
    t=${tool#py:}; t=${t#f:}
    missing+=("  $t (Debian/Ubuntu package $pkg): $why")
    case " ${pkgs[*]} " in *" $pkg "*) ;; *) pkgs+=("$pkg") ;; esac
  fi
done
command -v cargo >/dev/null || missing+=("  cargo: the Rust toolchain (rustup, or your distribution's cargo)")

can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$mode" = check ] || ! can_install || ! command -v cargo >/dev/null; then
    {
      echo "tests/run.sh: the test suite needs tools that are not installed:"
      printf '%s\n' "${missing[@]}"
      if [ "${#pkgs[@]}" -gt 0 ]; then
        echo "Install them with: apt-get install --no-install-recommends ${pkgs[*]}"
        echo "(or your distribution's equivalents), or run this script as root on Debian/Ubuntu."
      fi
    } >&2
    exit 1
  fi
  echo "tests/run.sh: installing what the tests need (apt-get):"
  printf '%s\n' "${missing[@]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  for n in "${needs[@]}"; do
    IFS='|' read -r tool pkg _ <<<"$n"
    have "$tool" || { echo "tests/run.sh: $pkg installed, but ${tool#*:} is still missing" >&2; exit 1; }
  done
fi
[ "$mode" = check ] && { echo "tests/run.sh: everything the suite needs is installed"; exit 0; }

if [ "$(id -u)" != 0 ]; then
  echo "tests/run.sh: run as root: the disk tests mount a 256 MiB tmpfs and loop filesystems, the CPU tests make a cgroup" >&2
  exit 1
fi
# Formatting and lints come with rustup's components; a distribution's cargo may lack them.
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  if command -v rustup >/dev/null; then
    rustup component add rustfmt clippy
  else
    echo "tests/run.sh: cargo fmt and cargo clippy are needed (rustup component add rustfmt clippy)" >&2
    exit 1
  fi
fi
[ "$mode" = setup ] && { echo "tests/run.sh: set up"; exit 0; }

cargo --version
# Habits first, they are cheap: formatting and lints (clippy with warnings as errors;
# Cargo.toml's [lints] make an unsafe block without a SAFETY comment an error).
cargo fmt --check
cargo clippy --locked --all-targets -- -D warnings
# Build everything (tests included) before any test runs, so no compiler shares the CPUs
# with a test. The measuring tests run in release: a debug build's busy loop is too noisy
# to judge a 5 % slowdown on a shared VM.
cargo build --locked --all-targets
cargo test --locked --release --test simulation --test measure --no-run
# The unit files (syntax, and a confined run of the hardened unit's settings).
bash examples/systemd/verify.sh target/debug/cro
bash examples/systemd/confined.sh target/debug/cro
# The release artifacts: the portable binary (GLIBC <= 2.17), the tarball, .deb and .rpm;
# then install and purge the .deb, check the .rpm's files and scripts, and run the portable
# binary as on a 3.10 kernel without PSI (packaging/check.sh says what each check is).
bash packaging/build.sh
bash packaging/check.sh
# The ARM release (Kunpeng, Phytium): built in a cached Debian chroot where this machine's
# Rust has no aarch64 standard library, checked, and run whole under qemu-user.
bash packaging/build.sh aarch64-unknown-linux-gnu
bash packaging/check-arm.sh
# Windows (x86_64): cro.exe built with mingw-w64 in the same chroot and packed as the zip
# and the MSI (CI packs the debug build: the release build takes 3 minutes more), its unit
# tests and an end-to-end set run under Wine there, the MSI's service and uninstall
# included (packaging/check-windows.sh says what each is).
bash packaging/build-windows.sh debug
bash packaging/cross.sh test-windows
bash packaging/check-windows.sh target/windows/debug/cro.exe
# The Ansible role (binary and tarball installs, variables, uninstall after recover).
bash examples/ansible/test-local.sh target/debug/cro
# The tests last, so the runner's summary is the last thing printed: the functional ones
# in parallel, then the measuring ones alone and serially. The fault tests mostly wait on
# the processes they kill and start again (11 s of CPU in 137 s here): they run beside the
# other functional ones, their output printed after them; 2 minutes of CI saved.
faults_log="$(mktemp)"
cargo test --locked --test faults >"$faults_log" 2>&1 &
faults_pid=$!
rc=0
cargo test --locked --lib --test layers --test cli --test fleet || rc=$?
faults_rc=0
wait "$faults_pid" || faults_rc=$?
cat "$faults_log"
rm -f "$faults_log"
[ "$rc" = 0 ] || { echo "tests/run.sh: the functional tests failed (exit $rc)" >&2; exit "$rc"; }
[ "$faults_rc" = 0 ] || { echo "tests/run.sh: the fault tests failed (exit $faults_rc)" >&2; exit "$faults_rc"; }
cargo test --locked --release --test simulation --test measure -- --test-threads=1
