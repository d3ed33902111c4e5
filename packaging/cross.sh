#!/usr/bin/env bash
# Build cro for another target (aarch64-unknown-linux-gnu, x86_64-pc-windows-gnu) on a
# machine whose Rust has no standard library for it, from Debian's archive and the crate
# and Python registries alone:
#
#   bash packaging/cross.sh build aarch64-unknown-linux-gnu   # -> target/<T>/release/cro
#   bash packaging/cross.sh run aarch64-unknown-linux-gnu BIN [ARGS]   # run it (qemu)
#   bash packaging/cross.sh binfmt on|off      # register qemu-aarch64 with the kernel
#   bash packaging/cross.sh build-windows [debug|release]  # -> target/windows/<p>/cro.exe
#   bash packaging/cross.sh test-windows [CARGO TEST ARGS]  # the unit tests, under Wine
#   bash packaging/cross.sh wine [--bind DIR]... [--drive L:DIR]... [--keep] PROG [ARGS]
#                          # run a Windows program (DIR seen as drive L:); --keep: leave
#                          # Wine up for the programs it started
#   bash packaging/cross.sh wine-stop [--bind DIR]... [--drive L:DIR]...   # end them
#
# Windows: mingw-w64 links cro.exe (x86_64-pc-windows-gnu, the C runtime linked in: it
# needs only Windows' own DLLs) and Wine 10 runs it and the unit tests, inside the same
# chroot; Wine's prefix (its C: drive) is kept in $CRO_CROSS_ROOT/wineprefix. Wine shows
# the chroot's / as drive Z:, so a directory bound in with --bind DIR is Z:<DIR>.
#
# Where `rustup target add <T>` has been done, `build` uses the host's toolchain. Else a
# Debian 13 (trixie) chroot supplies Rust (rustc-web, cargo-web) with its standard
# library's source (rust-web-src), so `-Zbuild-std` builds std for the target (allowed on a
# stable compiler by RUSTC_BOOTSTRAP=1: the one nightly feature used, for the build only);
# cargo-zigbuild and zig (pip, in a venv in the chroot) link against glibc 2.17's symbols,
# so the binary starts on CentOS 7 AltArch and Kylin V10 ARM as on newer systems.
#
# The chroot is kept in $CRO_CROSS_ROOT (default /var/cache/cro-cross, about 3.7 GB) and
# reused: the first setup takes about 3 minutes, later builds only cargo's incremental time.
# Runs as root (debootstrap, chroot, mounts); every mount it makes is undone on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${CRO_CROSS_ROOT:-/var/cache/cro-cross}
R=$ROOT/trixie
GLIBC=2.17
# The packages the chroot needs, and what for: Rust and std's source; the C cross
# compiler (ring's and the C library's objects); python for zig; certificates for cargo.
# mingw-w64 and Wine for Windows.
PKGS="rustc-web cargo-web rust-web-src gcc-aarch64-linux-gnu libc6-dev-arm64-cross
      python3-venv ca-certificates gcc-mingw-w64-x86-64 wine64"
STAMP="$R/.cro-cross-ready-2"

die() { echo "packaging/cross.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot)"

# The Debian mirror this host's apt already uses.
mirror() {
  local m
  m=$(sed -n 's/^URIs: *//p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
  [ -n "$m" ] || m=$(awk '$1=="deb"{print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  [ -n "$m" ] || die "no Debian mirror found in /etc/apt; set DEBIAN_MIRROR"
  echo "${DEBIAN_MIRROR:-$m}"
}

in_chroot() {
  chroot "$R" /usr/bin/env -i PATH=/opt/zig/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 CARGO_HOME=/cargo-home RUSTC_BOOTSTRAP=1 \
    CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc \
    CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=/usr/lib/wine/wine64 \
    WINEPREFIX=/wineprefix WINEDEBUG=-all XDG_RUNTIME_DIR=/run/xdg "$@"
}

mounted=()
mount_in() { # mount_in SRC DEST [opts]: bind SRC at $R/DEST for this run
  mkdir -p "$R$2"
  mountpoint -q "$R$2" || mount --bind "$1" "$R$2"
  mounted+=("$R$2")
}
cleanup() {
  local i
  # `wine --keep`: the Windows programs started (workers) keep running, and so must Wine
  # and its mounts, until `wine-stop`.
  [ -n "${keep:-}" ] && return 0
  # wineserver lingers a few seconds after the last Wine process: end it (every Windows
  # program of this run has exited), so its mounts can go.
  if [ -n "${wine_up:-}" ]; then
    in_chroot /usr/lib/wine/wineserver -k 2>/dev/null || true
    in_chroot /usr/lib/wine/wineserver -w 2>/dev/null || true
  fi
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" 2>/dev/null || true
  done
  # the mount points --bind made in the chroot's /tmp (empty once unmounted)
  for m in "${binds_made[@]}"; do rmdir "$m" 2>/dev/null || true; done
}
binds_made=()
trap cleanup EXIT

setup() {
  [ -f "$STAMP" ] && return 0
  command -v debootstrap >/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  }
  echo "packaging/cross.sh: making the build chroot in $R (once; about 3 minutes)" >&2
  mkdir -p "$ROOT"
  [ -x "$R/usr/bin/apt-get" ] || debootstrap --variant=minbase trixie "$R" "$(mirror)" >/dev/null
  # The host's extra CAs (a TLS-intercepting proxy's) for apt, pip and cargo in the chroot.
  if ls /usr/local/share/ca-certificates/*.crt >/dev/null 2>&1; then
    mkdir -p "$R/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$R/usr/local/share/ca-certificates/"
  fi
  cp /etc/resolv.conf "$R/etc/resolv.conf"
  mount_in /proc /proc
  in_chroot sh -ec "apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(echo $PKGS) >/dev/null
    apt-get clean
    update-ca-certificates >/dev/null 2>&1 || true"
  # -Zbuild-std looks for std's source at <sysroot>/lib/rustlib/src/rust/library.
  in_chroot sh -ec '
    lib=$(rustc --print sysroot)/lib/rustlib/src/rust/library
    if [ ! -f "$lib/std/Cargo.toml" ]; then
      src=$(ls -d /usr/src/rustc-*/library | sort -V | tail -1)
      mkdir -p "$(dirname "$(dirname "$lib")")"
      ln -sfn "$(dirname "$src")" "$(dirname "$lib")"
    fi
    test -f "$lib/std/Cargo.toml"'
  in_chroot sh -ec 'python3 -m venv /opt/zig && /opt/zig/bin/pip install -q cargo-zigbuild ziglang'
  touch "$STAMP"
}

host_has_std() { # does the host's Rust have a standard library for $1?
  local d
  d=$(rustc --print target-libdir --target "$1" 2>/dev/null) || return 1
  ls "$d"/libstd-*.rlib >/dev/null 2>&1
}

build() {
  local t=$1
  if host_has_std "$t"; then
    bash -c "cargo zigbuild --locked --release --target $t.$GLIBC --bin cro"
    return
  fi
  setup
  mount_in /proc /proc
  mount_in "$PWD" /src
  # The packaged defaults, as packaging/build.sh sets them for the host's build.
  # Its own target directory: another rustc's artifacts beside the host's would only
  # rebuild each other's.
  local defaults=()
  [ -n "${CRO_DEFAULT_STATE_DIR:-}" ] && defaults+=("CRO_DEFAULT_STATE_DIR=$CRO_DEFAULT_STATE_DIR")
  [ -n "${CRO_DEFAULT_DESIRED:-}" ] && defaults+=("CRO_DEFAULT_DESIRED=$CRO_DEFAULT_DESIRED")
  in_chroot "${defaults[@]}" CARGO_TARGET_DIR=/src/target/cross \
    sh -ec "cd /src
    cargo zigbuild --locked --release -Zbuild-std=std,panic_abort \
      --target $t.$GLIBC --bin cro"
  mkdir -p "target/$t/release"
  cp "target/cross/$t/release/cro" "target/$t/release/cro"
  echo "packaging/cross.sh: built target/$t/release/cro" >&2
}

# qemu for aarch64 binaries, registered with the kernel so that a worker cro spawns (an
# exec of the same binary) runs too. F: the interpreter is opened now, so it also works
# inside other mount namespaces and chroots.
BINFMT=/proc/sys/fs/binfmt_misc
binfmt() {
  case "$1" in
    on)
      command -v qemu-aarch64-static >/dev/null || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
          qemu-user-static libc6-arm64-cross >/dev/null
      }
      [ -d /usr/aarch64-linux-gnu/lib ] || {
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libc6-arm64-cross >/dev/null
      }
      mountpoint -q "$BINFMT" || mount -t binfmt_misc binfmt_misc "$BINFMT"
      [ -e "$BINFMT/cro-aarch64" ] && return 0
      # Debian's own registration may already handle aarch64 (and would win): use it then.
      if [ -e "$BINFMT/qemu-aarch64" ]; then
        return 0
      fi
      printf '%s' ':cro-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:/usr/bin/qemu-aarch64-static:F' \
        > "$BINFMT/register"
      ;;
    off)
      [ -e "$BINFMT/cro-aarch64" ] && echo -1 > "$BINFMT/cro-aarch64"
      return 0
      ;;
    *) die "binfmt on|off" ;;
  esac
}

# Wine needs /proc, a /dev/shm and a runtime directory; its prefix outlives the chroot's
# runs (the first run makes it, about 5 s).
wine_mounts() {
  mount_in /proc /proc
  mkdir -p "$R/dev/shm" "$ROOT/wineprefix" "$R/run/xdg"
  chmod 700 "$R/run/xdg"
  mountpoint -q "$R/dev/shm" || mount -t tmpfs -o mode=1777,size=256m shm "$R/dev/shm"
  mounted+=("$R/dev/shm")
  mount_in "$ROOT/wineprefix" /wineprefix
  wine_up=1
  # The server first, on no terminal or pipe of ours: started by the first program, it
  # would hold that program's output open for as long as it lives (with --keep, after
  # this script ends), and a caller reading that output would wait for ever.
  # (One already running answers for itself and this exits non-zero.)
  in_chroot /usr/lib/wine/wineserver -p5 </dev/null >/dev/null 2>&1 || true
}

# cargo for Windows in the chroot, with this tree at /src and its own target directory
# (target/windows-build: std is built there from source, once).
windows_cargo() {
  setup
  wine_mounts
  mount_in "$PWD" /src
  # No debug info and no incremental state: a build here is a check and a test run, and
  # debug info doubles what the linker writes.
  in_chroot CARGO_TARGET_DIR=/src/target/windows-build CARGO_PROFILE_DEV_DEBUG=0 \
    CARGO_PROFILE_TEST_DEBUG=0 CARGO_INCREMENTAL=0 sh -ec 'cd /src; exec "$@"' sh \
    "$@"
}
WIN_T=x86_64-pc-windows-gnu
WIN_STD=(-Zbuild-std=std,panic_abort --target "$WIN_T")

build_windows() {
  local p=${1:-release} flag=()
  [ "$p" = release ] && flag=(--release)
  [ "$p" = debug ] || [ "$p" = release ] || die "build-windows debug|release"
  local log=target/windows-build.log
  mkdir -p target
  # (not through a pipe: a pipeline's subshell would make the mounts this script must undo)
  local rc=0
  # Built as the zip and the MSI install it (packaging/build-windows.sh): a `cro status`
  # typed in any console shows the service's state.
  windows_cargo env 'CRO_DEFAULT_STATE_DIR=C:\ProgramData\cro\state' \
    'CRO_DEFAULT_DESIRED=C:\ProgramData\cro\desired.json' \
    cargo build --locked "${flag[@]}" "${WIN_STD[@]}" --bin cro >"$log" 2>&1 || rc=$?
  cat "$log" >&2
  [ "$rc" = 0 ] || die "the Windows build failed ($log)"
  # The host's clippy has no Windows standard library: at least rustc's own warnings
  # about cro's code fail the build here, as -D warnings does on Linux.
  if grep -q "^warning: .cro. (.*) generated" "$log"; then die "cro has warnings on Windows ($log)"; fi
  mkdir -p "target/windows/$p"
  cp "target/windows-build/$WIN_T/$p/cro.exe" "target/windows/$p/cro.exe"
  echo "packaging/cross.sh: built target/windows/$p/cro.exe" >&2
}

# Run a Windows program under Wine: PROG is a path in the chroot (a bound directory's
# file) or one of Wine's own (cmd). --bind DIR makes the host's DIR visible at the same
# path, which Windows programs see as Z:DIR (with backslashes).
wine_run() {
  local binds=() drives=()
  while :; do
    case "${1:-}" in
      --bind) binds+=("$2"); shift 2 ;;
      --drive) drives+=("$2"); binds+=("${2#*:}"); shift 2 ;;
      --keep) keep=1; shift ;;
      *) break ;;
    esac
  done
  setup
  wine_mounts
  local b
  for b in "${binds[@]}"; do
    [ -e "$R$b" ] || binds_made+=("$R$b")
    mount_in "$b" "$b"
  done
  # --drive L:DIR: Windows programs see DIR as drive L: (a link in the prefix's dosdevices)
  local d
  for d in "${drives[@]}"; do
    mkdir -p "$ROOT/wineprefix/dosdevices"
    ln -sfn "${d#*:}" "$ROOT/wineprefix/dosdevices/$(echo "${d%%:*}" | tr 'A-Z' 'a-z'):"
  done
  local rc=0
  if [ -n "${keep:-}" ]; then
    # A Windows program's children (workers) inherit its Unix stdout and stderr under
    # Wine, whatever Windows handles they were given: through files, not the caller's
    # pipes, or a caller reading the output would wait for the workers to end.
    local out err
    out=$(mktemp) err=$(mktemp)
    in_chroot /usr/lib/wine/wine64 "$@" </dev/null >"$out" 2>"$err" || rc=$?
    cat "$out"
    cat "$err" >&2
    rm -f "$out" "$err"
  else
    in_chroot /usr/lib/wine/wine64 "$@" || rc=$?
  fi
  return $rc
}

case "${1:-}" in
  build-windows) build_windows "${2:-release}" ;;
  test-windows)
    shift
    windows_cargo cargo test --locked "${WIN_STD[@]}" --lib "$@" ;;
  wine) shift; wine_run "$@" ;;
  wine-stop)
    # End every Windows program still running (wineserver -k) and undo `wine --keep`'s
    # mounts: those wine_mounts makes, and each --bind DIR named again here.
    shift
    wine_up=1
    mounted=("$R/proc" "$R/dev/shm" "$R/wineprefix")
    while [ -n "${1:-}" ]; do
      case "$1" in
        --bind) mounted+=("$R$2") binds_made+=("$R$2") ;;
        --drive)
          mounted+=("$R${2#*:}") binds_made+=("$R${2#*:}")
          rm -f "$ROOT/wineprefix/dosdevices/$(echo "${2%%:*}" | tr 'A-Z' 'a-z'):" ;;
        *) die "wine-stop [--bind DIR]... [--drive L:DIR]..." ;;
      esac
      shift 2
    done ;;
  build) [ -n "${2:-}" ] || die "build TARGET"; build "$2" ;;
  setup) setup ;;
  binfmt) binfmt "${2:-}" ;;
  run)
    [ "${2:-}" = aarch64-unknown-linux-gnu ] || die "run aarch64-unknown-linux-gnu BIN [ARGS]"
    shift 2
    QEMU_LD_PREFIX=/usr/aarch64-linux-gnu exec qemu-aarch64-static "$@" ;;
  *) sed -n '2,29p' "$0"; exit 2 ;;
esac
