#!/usr/bin/env bash
# Idempotent build of the pgkeel_fence extension (ext/pgkeel_fence) with PGXS against Debian's
# PostgreSQL 15 headers: installs postgresql-server-dev-15 (and libkrb5-dev: Debian's server headers
# are built --with-gssapi, so libpq-be.h includes gssapi.h) when missing, then builds and installs
# pgkeel_fence.so into `pg_config --pkglibdir` only when it is missing or older than its source.
# Prints one line of what it did; on a compiler error prints the compiler's output and fails.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
SRC=ext/pgkeel_fence
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"

did=()
missing=()
for pkg in postgresql-server-dev-15 libkrb5-dev make gcc libc6-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  did+=("installed ${missing[*]}")
fi

target="$("$PG_CONFIG" --pkglibdir)/pgkeel_fence.so"
stale=0
if [ ! -f "$target" ]; then
  stale=1
else
  for f in "$SRC"/pgkeel_fence.c "$SRC"/Makefile "$SRC"/pgkeel_fence.control "$SRC"/pgkeel_fence--*.sql; do
    [ -e "$f" ] && [ "$f" -nt "$target" ] && stale=1
  done
fi

if ((stale)); then
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  if ! make -C "$SRC" PG_CONFIG="$PG_CONFIG" >"$log" 2>&1; then
    cat "$log" >&2
    echo "build_fence: build of $SRC failed" >&2
    exit 1
  fi
  if ! $SUDO make -C "$SRC" PG_CONFIG="$PG_CONFIG" install >>"$log" 2>&1; then
    cat "$log" >&2
    echo "build_fence: install into $(dirname "$target") failed" >&2
    exit 1
  fi
  make -C "$SRC" PG_CONFIG="$PG_CONFIG" clean >/dev/null 2>&1 || true
  did+=("built and installed $target")
fi

if ((${#did[@]})); then
  (IFS=';'; echo "build_fence: ${did[*]}")
else
  echo "build_fence: $target is up to date"
fi
