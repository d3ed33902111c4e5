#!/usr/bin/env bash
# Build cro's portable binary for another target (aarch64-unknown-linux-gnu) on a machine
# whose Rust has no standard library for it, from Debian's archive and the crate and
# Python registries alone:
#
#   bash packaging/cross.sh build aarch64-unknown-linux-gnu   # -> target/<T>/release/cro
#   bash packaging/cross.sh run aarch64-unknown-linux-gnu BIN [ARGS]   # run it (qemu)
#   bash packaging/cross.sh binfmt on|off      # register qemu-aarch64 with the kernel
#
# Where `rustup target add <T>` has been done, `build` uses the host's toolchain. Else a
# Debian 13 (trixie) chroot supplies Rust (rustc-web, cargo-web) with its standard
# library's source (rust-web-src), so `-Zbuild-std` builds std for the target (allowed on a
# stable compiler by RUSTC_BOOTSTRAP=1: the one nightly feature used, for the build only);
# cargo-zigbuild and zig (pip, in a venv in the chroot) link against glibc 2.17's symbols,
# so the binary starts on CentOS 7 AltArch and Kylin V10 ARM as on newer systems.
#
# The chroot is kept in $CRO_CROSS_ROOT (default /var/cache/cro-cross, about 1.5 GB) and
# reused: the first setup takes about 3 minutes, later builds only cargo's incremental time.
# Runs as root (debootstrap, chroot, mounts); every mount it makes is undone on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=${CRO_CROSS_ROOT:-/var/cache/cro-cross}
R=$ROOT/trixie
GLIBC=2.17
# The packages the chroot needs, and what for: Rust and std's source; the C cross
# compiler (ring's and the C library's objects); python for zig; certificates for cargo.
PKGS="rustc-web cargo-web rust-web-src gcc-aarch64-linux-gnu libc6-dev-arm64-cross
      python3-venv ca-certificates"
STAMP="$R/.cro-cross-ready-1"

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
    LANG=C.UTF-8 CARGO_HOME=/cargo-home RUSTC_BOOTSTRAP=1 "$@"
}

mounted=()
mount_in() { # mount_in SRC DEST [opts]: bind SRC at $R/DEST for this run
  mkdir -p "$R$2"
  mountpoint -q "$R$2" || mount --bind "$1" "$R$2"
  mounted+=("$R$2")
}
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" 2>/dev/null || true
  done
}
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

case "${1:-}" in
  build) [ -n "${2:-}" ] || die "build TARGET"; build "$2" ;;
  setup) setup ;;
  binfmt) binfmt "${2:-}" ;;
  run)
    [ "${2:-}" = aarch64-unknown-linux-gnu ] || die "run aarch64-unknown-linux-gnu BIN [ARGS]"
    shift 2
    QEMU_LD_PREFIX=/usr/aarch64-linux-gnu exec qemu-aarch64-static "$@" ;;
  *) sed -n '2,17p' "$0"; exit 2 ;;
esac
