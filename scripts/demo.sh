#!/usr/bin/env bash
# README command 1: install, build the virtual Tibetan Plateau, train every model, build the
# archive, validate, and serve the dashboard. Later runs reuse what exists.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0          # CPU wheel first: a bare `torch` pulls a multi-GB CUDA build
python -m pip install -q -e .
exec sm-downscale demo "$@"
