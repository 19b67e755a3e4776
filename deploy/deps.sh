#!/bin/sh
# Installs the build, test, fuzz and run dependencies that are missing on a Debian 12
# machine (apt-get, as root or through sudo; prometheus is there for promtool,
# which the metrics tests run on /metrics; dovecot-imapd and openssl serve the
# IMAP tests' throwaway server, tests/dovecot.sh; chromium the web console's
# browser test; gnuplot-nox draws `make soak`'s plot), and the node packages the tests
# run (@redocly/cli, the OpenAPI linter, and puppeteer-core, which drives
# Debian's chromium in the web console's browser test; both pinned, from npm
# into the git-ignored .tmp/node; no browser is downloaded). Does nothing
# when all are present. Called by `make deps`, which `make test`, `make fuzz`,
# `make run` and `make bench` depend on.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
# clang and libclang-rt-14-dev (libFuzzer's runtime): `make fuzz`
PKGS="gcc clang libclang-rt-14-dev make pkgconf libuv1-dev libpq-dev libcjson-dev libsodium-dev libcurl4-openssl-dev
      libssl-dev libh2o-dev libgmime-3.0-dev libglib2.0-dev postgresql-15 python3 python3-yaml systemd
      wrk procps iproute2 util-linux prometheus dovecot-imapd openssl chromium gnuplot-nox"
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
    # the IMAP tests run their own dovecot (tests/dovecot.sh); a system one the
    # install just started is not ours to keep running: stop that one, by its pid
    case "$missing" in *dovecot-imapd*)
        if [ -f /run/dovecot/master.pid ]; then $SUDO kill "$(cat /run/dovecot/master.pid)" 2>/dev/null || true; fi ;;
    esac
fi

# The node packages: the OpenAPI linter (the docs_openapi_lint test) and
# puppeteer-core (the web_console test drives /usr/bin/chromium with it).
# Only the versions below are used; no lock file or package.json is written
# into the repository (the install lives in .tmp/node, which git ignores).
# Both are installed by one npm command, so neither install prunes the other.
# Without node and npm they are skipped here, and those tests fail saying so.
REDOCLY_VERSION=2.77.0
PUPPETEER_VERSION=25.16.0
node_dir="$top/.tmp/node"
version_of() {
    f="$node_dir/node_modules/$1/package.json"
    [ -f "$f" ] && command -v node >/dev/null && node -p "require(process.argv[1]).version" "$f" 2>/dev/null || true
}
if [ "$(version_of @redocly/cli)" != "$REDOCLY_VERSION" ] ||
   [ "$(version_of puppeteer-core)" != "$PUPPETEER_VERSION" ]; then
    if command -v npm >/dev/null && command -v node >/dev/null; then
        echo "deps: installing @redocly/cli $REDOCLY_VERSION and puppeteer-core $PUPPETEER_VERSION into .tmp/node"
        mkdir -p "$node_dir"
        PUPPETEER_SKIP_DOWNLOAD=1 npm install --prefix "$node_dir" --no-save --no-package-lock --no-audit --no-fund \
            --loglevel=error "@redocly/cli@$REDOCLY_VERSION" "puppeteer-core@$PUPPETEER_VERSION" >/dev/null
    else
        echo "deps: node and npm are not installed: the tests docs_openapi_lint and web_console will fail" >&2
    fi
fi
