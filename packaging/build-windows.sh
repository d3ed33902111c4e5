#!/usr/bin/env bash
# The Windows (x86_64) release artifacts, into target/dist/:
#   cro-<version>-x86_64-windows.zip   cro.exe, install.ps1, uninstall.ps1, README.txt,
#                                      desired.example.json (packaging/windows/)
#   cro-<version>-x86_64.msi           the same program as a Windows Installer package
#                                      (msitools' wixl, from packaging/windows/cro.wxs)
# cro.exe comes from packaging/cross.sh (mingw-w64 in the cached Debian chroot), built
# with the Windows defaults: C:\ProgramData\cro\state and C:\ProgramData\cro\desired.json.
#
#   bash packaging/build-windows.sh [release|debug]   (CI packs its debug build: the same
#                                                      files, 3 minutes sooner)
set -euo pipefail
cd "$(dirname "$0")/.."
P=${1:-release}
VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
bash packaging/cross.sh build-windows "$P"
EXE="target/windows/$P/cro.exe"
command -v wixl >/dev/null || {
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wixl >/dev/null
}
DIST=target/dist
WORK=target/packaging-windows
NAME="cro-$VERSION-x86_64-windows"
rm -rf "$WORK" && mkdir -p "$WORK/$NAME" "$DIST"
cp "$EXE" packaging/windows/install.ps1 packaging/windows/uninstall.ps1 \
  packaging/windows/README.txt packaging/windows/desired.example.json "$WORK/$NAME/"
rm -f "$DIST/$NAME.zip"
(cd "$WORK" && python3 -m zipfile -c "$OLDPWD/$DIST/$NAME.zip" "$NAME/")
echo "windows zip: $DIST/$NAME.zip ($P build)"
wixl -a x64 -D "Version=$VERSION" -D "Exe=$EXE" -D Readme=packaging/windows/README.txt \
  -D Example=packaging/windows/desired.example.json \
  -o "$DIST/cro-$VERSION-x86_64.msi" packaging/windows/cro.wxs
echo "windows msi: $DIST/cro-$VERSION-x86_64.msi"
