#!/bin/sh
# Installs the build, test and run dependencies that are missing on a Debian 12
# machine (apt-get, as root or through sudo). Does nothing when all are present.
# Called by `make deps`, which `make test`, `make run` and `make bench` depend on.
set -eu
PKGS="gcc make pkgconf libuv1-dev libpq-dev libcjson-dev libsodium-dev libcurl4-openssl-dev
      libssl-dev libh2o-dev libgmime-3.0-dev libglib2.0-dev postgresql-15
      wrk procps iproute2 util-linux"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "deps: missing packages:$missing; run as root or install sudo" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
