#!/bin/sh
# Installs the build, test, fuzz and run dependencies that are missing on a Debian 12
# machine (apt-get, as root or through sudo), and the OpenAPI linter the tests
# run (@redocly/cli, pinned, from npm into the git-ignored .tmp/node). Does
# nothing when all are present. Called by `make deps`, which `make test`, `make fuzz`,
# `make run` and `make bench` depend on.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
# clang and libclang-rt-14-dev (libFuzzer's runtime): `make fuzz`
PKGS="gcc clang libclang-rt-14-dev make pkgconf libuv1-dev libpq-dev libcjson-dev libsodium-dev libcurl4-openssl-dev
      libssl-dev libh2o-dev libgmime-3.0-dev libglib2.0-dev postgresql-15
      wrk procps iproute2 util-linux"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "deps: installing$missing"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
        echo "deps: missing packages:$missing; run as root or install sudo" >&2; exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# The OpenAPI linter (the docs_openapi_lint test). Only the version below is
# used; no lock file or package.json is written into the repository (the
# install lives in .tmp/node, which git ignores). Without node and npm it is
# skipped here, and that test fails saying so.
REDOCLY_VERSION=2.77.0
node_dir="$top/.tmp/node"
cli_pkg="$node_dir/node_modules/@redocly/cli/package.json"
have=""
[ -f "$cli_pkg" ] && command -v node >/dev/null &&
    have=$(node -p "require(process.argv[1]).version" "$cli_pkg" 2>/dev/null || true)
if [ "$have" != "$REDOCLY_VERSION" ]; then
    if command -v npm >/dev/null && command -v node >/dev/null; then
        echo "deps: installing @redocly/cli $REDOCLY_VERSION into .tmp/node"
        mkdir -p "$node_dir"
        npm install --prefix "$node_dir" --no-save --no-package-lock --no-audit --no-fund \
            --loglevel=error "@redocly/cli@$REDOCLY_VERSION" >/dev/null
    else
        echo "deps: node and npm are not installed: the OpenAPI lint test (docs_openapi_lint) will fail" >&2
    fi
fi
