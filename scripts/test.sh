#!/usr/bin/env bash
# Set up everything (pinned venv, MovieLens-100K, test tools) and run the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k transfer`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/setup.sh
bash scripts/setup_test_tools.sh

export DVC_NO_ANALYTICS=1 GX_ANALYTICS_ENABLED=False
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    # pytest exits 5 when it collected no test: a broken test tree must not pass.
    echo "error: pytest collected no tests; check the tests/ folder and the -k/-m filters" >&2
    exit 1
fi
exit "$status"
