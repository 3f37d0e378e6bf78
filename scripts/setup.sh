#!/usr/bin/env bash
# Idempotent setup for a fresh Debian machine: apt packages, then a .venv with pgkeel
# installed in editable mode with its test extras. Does nothing when all is present.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(postgresql-15 postgresql-client-15 etcd-server iproute2 python3-venv haproxy pgbackrest)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian's package creates and starts a default cluster / etcd service; pgkeel runs its own.
  if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q '^15 main'; then
    $SUDO pg_ctlcluster 15 main stop 2>/dev/null || true
  fi
  $SUDO systemctl disable --now etcd 2>/dev/null || true
  $SUDO systemctl disable --now haproxy 2>/dev/null || true  # tests start their own (tests/e2e/test_haproxy.py)
fi
bash scripts/build_fence.sh  # the pgkeel_fence library (ext/pgkeel_fence), built with PGXS when missing or stale

# Debian's python3 first: it has sqlite3 (the embedded coordination store); some other
# builds on PATH (pyenv without libsqlite3) do not.
PYTHON=${PYTHON:-/usr/bin/python3}
stamp=.venv/.pgkeel-installed
if [ -x .venv/bin/python ] && ! .venv/bin/python -c 'import sqlite3' 2>/dev/null; then
  echo "setup: .venv's Python lacks sqlite3; recreating it with $PYTHON"
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
  echo "setup: installing Python dependencies into .venv (requirements.lock: the whole tree, pinned)"
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.lock
  .venv/bin/pip install -q --disable-pip-version-check --no-deps -e .
  touch "$stamp"
fi
