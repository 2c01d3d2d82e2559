#!/usr/bin/env bash
# The GPU check of a short loan (scripts/gpu_check.py says what it measures): bash scripts/gpu_check.sh <dir>
# [--allow-cpu]. Runs from a checkout with or without `make install`: the project's venv if there is one, else
# the machine's python3 with src/ on the path (a bare GPU machine with the bundle's wheels, docs/clusters.md, "On a GPU").
set -euo pipefail
if [ $# -ge 1 ] && [ "${1#/}" = "$1" ] && [ "${1#-}" = "$1" ]; then
    set -- "$PWD/$1" "${@:2}"  # the folder is named from where the command is typed, not from the checkout
fi
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if [ $# -lt 1 ]; then
    echo "usage: bash scripts/gpu_check.sh <dir for gpu_check.json> [--allow-cpu] [--budget-seconds S]" >&2
    exit 2
fi
exec "$PYTHON" scripts/gpu_check.py "$@"
