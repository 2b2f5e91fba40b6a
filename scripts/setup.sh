#!/usr/bin/env bash
# Create .venv with the pinned stack, install this project into it and fetch the
# MovieLens-100K files. Safe to run again: it skips what is already up to date.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

python=${PYTHON:-python3.11}
if ! command -v "$python" >/dev/null 2>&1; then
    echo "error: $python not found; install Python 3.11 or set PYTHON=/path/to/python3.11" >&2
    exit 2
fi

stamp=.venv/.crossadapt-installed
wanted=$(cat requirements.lock pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "setup: creating .venv and installing the pinned stack (about 2 minutes)"
    [ -x .venv/bin/python ] || "$python" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
    # torch==2.13.0 in the lock resolves to the CPU build where pip is configured to
    # find it; the check below stops a CUDA build from going unnoticed.
    .venv/bin/python -m pip install --quiet -r requirements.lock
    .venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e .
    .venv/bin/python - <<'PY'
import sys

import torch

if torch.version.cuda is not None:
    sys.exit(
        f"error: torch {torch.__version__} is a CUDA build; install the CPU build of "
        "torch 2.13.0 (pip install torch==2.13.0 from the PyTorch CPU wheel) and rerun"
    )
print(f"setup: torch {torch.__version__} (CPU build)")
PY
    echo "$wanted" > "$stamp"
else
    echo "setup: .venv is up to date"
fi

.venv/bin/crossadapt fetch-data --quiet
