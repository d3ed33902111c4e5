#!/usr/bin/env bash
# Build the release artifacts into target/dist/:
#   cro-<version>-<arch>-linux.tar.gz   the portable binary (glibc >= 2.17: CentOS 7 on),
#                                       man page, completions, units, example, docs, licences
#   cro_<version>-1_<debarch>.deb       Debian, Ubuntu, Kylin (deb flavour)
#   cro-<version>-1.<arch>.rpm          CentOS/RHEL 7-9, openEuler, Kylin (rpm flavour)
#
# Usage: bash packaging/build.sh [TARGET]      (default x86_64-unknown-linux-gnu)
#   bash packaging/build.sh aarch64-unknown-linux-gnu   ARM (Kunpeng, Phytium): with the
#   target's standard library where rustup has it, else through packaging/cross.sh (a
#   Debian chroot that builds std from source; cached in /var/cache/cro-cross).
#
# What it installs, cached under target/: cargo-zigbuild and zig (pip, in a venv under
# target/packaging-venv): zig links against glibc 2.17's symbols, so the binary starts on
# CentOS 7. dpkg-deb builds the .deb; rpmbuild (Debian's `rpm` package, installed with
# apt when missing) the .rpm. The packaged binary defaults to /var/lib/cro and
# /etc/cro/desired.json (CRO_DEFAULT_STATE_DIR / CRO_DEFAULT_DESIRED at build time).
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${1:-x86_64-unknown-linux-gnu}"
GLIBC=2.17
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
case "$TARGET" in
  x86_64-*) ARCH=x86_64; DEBARCH=amd64 ;;
  aarch64-*) ARCH=aarch64; DEBARCH=arm64 ;;
  *) echo "packaging/build.sh: unsupported target $TARGET (x86_64 or aarch64 gnu)" >&2; exit 2 ;;
esac
DIST=target/dist
WORK=target/packaging
rm -rf "$WORK" && mkdir -p "$WORK" "$DIST"

# 1. The portable binary.
VENV=target/packaging-venv
if [ ! -x "$VENV/bin/cargo-zigbuild" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q cargo-zigbuild ziglang
fi
export PATH="$PWD/$VENV/bin:$PATH"
export CRO_DEFAULT_STATE_DIR=/var/lib/cro CRO_DEFAULT_DESIRED=/etc/cro/desired.json
if [ "$TARGET" = x86_64-unknown-linux-gnu ]; then
  cargo zigbuild --locked --release --target "$TARGET.$GLIBC" --bin cro
else
  bash packaging/cross.sh build "$TARGET"
fi
unset CRO_DEFAULT_STATE_DIR CRO_DEFAULT_DESIRED
BIN="target/$TARGET/release/cro"
# The binary is for the target's machine (readelf reads any architecture's ELF).
case "$ARCH" in
  x86_64) machine="X86-64" ;;
  aarch64) machine="AArch64" ;;
esac
readelf -h "$BIN" | grep -q "Machine:.*$machine" || {
  echo "packaging/build.sh: $BIN is not an $ARCH binary" >&2; exit 1; }
# The highest glibc symbol version it needs must be 2.17 at most.
need="$(readelf --dyn-syms -W "$BIN" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -V | tail -1)"
if [ "$(printf '%s\n%s\n' "$need" "$GLIBC" | sort -V | tail -1)" != "$GLIBC" ]; then
  echo "packaging/build.sh: $BIN needs GLIBC_$need, more than $GLIBC" >&2
  exit 1
fi
echo "portable binary: $BIN (needs at most GLIBC_$need)"

# Generated files come from a binary that runs here (the host's build when cross-building).
# For another target: this machine's portable build (same defaults) if there is one, else
# a plain release build.
GEN="$BIN"
if ! "$GEN" --version >/dev/null 2>&1; then
  GEN=target/x86_64-unknown-linux-gnu/release/cro
  if ! "$GEN" --version >/dev/null 2>&1; then
    cargo build --locked --release --bin cro && GEN=target/release/cro
  fi
fi

# 2. The file tree every package installs.
ROOT="$WORK/root"
install -d "$ROOT/usr/bin" "$ROOT/usr/lib/systemd/system" "$ROOT/usr/share/man/man1" \
  "$ROOT/usr/share/bash-completion/completions" "$ROOT/usr/share/zsh/vendor-completions" \
  "$ROOT/usr/share/fish/vendor_completions.d" "$ROOT/usr/share/doc/cro/examples" "$ROOT/etc/cro"
install -m 0755 "$BIN" "$ROOT/usr/bin/cro"
"$GEN" man | gzip -9n > "$ROOT/usr/share/man/man1/cro.1.gz"
"$GEN" completions bash > "$ROOT/usr/share/bash-completion/completions/cro"
"$GEN" completions zsh > "$ROOT/usr/share/zsh/vendor-completions/_cro"
"$GEN" completions fish > "$ROOT/usr/share/fish/vendor_completions.d/cro.fish"
for u in cro.service cro-reconcile.service cro-reconcile.timer; do
  sed 's#/usr/local/bin/cro#/usr/bin/cro#g' "examples/systemd/$u" > "$ROOT/usr/lib/systemd/system/$u"
done
# The packaged desired state: the built-in default (tier targets, no disk mounts), as
# `cro init` writes it; a configuration file an upgrade does not overwrite.
"$GEN" --state-dir "$WORK/init" --desired "$ROOT/etc/cro/desired.json" init 2>/dev/null
chmod 0644 "$ROOT/etc/cro/desired.json" "$ROOT/etc/cro/desired-state.schema.json"
install -m 0644 README.md ARCHITECTURE.md LICENSE-MIT LICENSE-APACHE "$ROOT/usr/share/doc/cro/"
install -m 0644 examples/*.json "$ROOT/usr/share/doc/cro/examples/"

# 3. The tarball: the same files under one directory, for hosts without a package manager
# (or to copy the binary alone).
NAME="cro-$VERSION-$ARCH-linux"
T="$WORK/$NAME"
install -d "$T/systemd" "$T/completions" "$T/examples"
cp "$ROOT/usr/bin/cro" "$T/"
cp "$ROOT/usr/share/man/man1/cro.1.gz" "$T/"
cp "$ROOT"/usr/lib/systemd/system/* "$T/systemd/"
cp "$ROOT/usr/share/bash-completion/completions/cro" "$T/completions/cro.bash"
cp "$ROOT/usr/share/zsh/vendor-completions/_cro" "$T/completions/_cro"
cp "$ROOT/usr/share/fish/vendor_completions.d/cro.fish" "$T/completions/"
cp "$ROOT"/etc/cro/* "$ROOT"/usr/share/doc/cro/examples/* "$T/examples/"
cp README.md ARCHITECTURE.md LICENSE-MIT LICENSE-APACHE "$T/"
tar -C "$WORK" --owner=0 --group=0 --numeric-owner -czf "$DIST/$NAME.tar.gz" "$NAME"
echo "wrote $DIST/$NAME.tar.gz"

# 4. The .deb.
D="$WORK/deb"
cp -a "$ROOT" "$D"
install -d -m 0755 "$D/DEBIAN"
SIZE="$(du -sk "$ROOT" | cut -f1)"
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$DEBARCH/" -e "s/@SIZE@/$SIZE/" \
  packaging/deb/control > "$D/DEBIAN/control"
printf '/etc/cro/desired.json\n/etc/cro/desired-state.schema.json\n' > "$D/DEBIAN/conffiles"
for s in postinst prerm postrm; do install -m 0755 "packaging/deb/$s" "$D/DEBIAN/$s"; done
dpkg-deb --root-owner-group -Zxz --build "$D" "$DIST/cro_${VERSION}-1_${DEBARCH}.deb" >/dev/null
echo "wrote $DIST/cro_${VERSION}-1_${DEBARCH}.deb"

# 5. The .rpm.
if ! command -v rpmbuild >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rpm >/dev/null
fi
R="$PWD/$WORK/rpm"
install -d "$R/SPECS" "$R/BUILD" "$R/RPMS" "$R/SOURCES" "$R/SRPMS"
sed -e "s/@VERSION@/$VERSION/" packaging/rpm/cro.spec > "$R/SPECS/cro.spec"
rpmbuild -bb --quiet --target "$ARCH-linux" \
  --define "_topdir $R" --define "_crotree $PWD/$ROOT" \
  --define "_build_id_links none" --define "__os_install_post %{nil}" "$R/SPECS/cro.spec"
cp "$R/RPMS/$ARCH/cro-$VERSION-1.$ARCH.rpm" "$DIST/"
echo "wrote $DIST/cro-$VERSION-1.$ARCH.rpm"
