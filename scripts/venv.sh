#!/bin/sh
# scripts/venv.sh EXTRAS : create .venv (installing python3-venv first if Debian lacks it) and
# install Ringwell into it, editable, with the given extras ("" or "test").
set -eu
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv 2>/dev/null; then
    rm -rf .venv
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends python3-venv
      "$PY" -m venv .venv
    else
      echo "python3 -m venv failed: install the python3-venv package" >&2
      exit 1
    fi
  fi
  .venv/bin/pip install -q -U pip
fi
if [ -n "${1:-}" ]; then
  .venv/bin/pip install -q -e ".[$1]"
else
  .venv/bin/pip install -q -e .
fi
