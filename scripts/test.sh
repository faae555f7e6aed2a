#!/usr/bin/env bash
# README command 2: install (with the browser the dashboard tests drive) and run the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "note: chromium not installed and not root; browser tests will be skipped" >&2
  fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0          # CPU wheel first: a bare `torch` pulls a multi-GB CUDA build
python -m pip install -q -e ".[test]"
python -m ruff check .                          # lint (pyproject.toml [tool.ruff])
exec python -m pytest --durations=30 "$@"   # the 30 slowest tests in the log: where the time goes
