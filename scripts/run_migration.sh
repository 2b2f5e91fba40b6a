#!/usr/bin/env bash
# The main job: set up everything, then run a whole CrossAdapt migration on MovieLens-100K
# with DVC (teacher bootstrap, offline stage, every online day of 1998-03, test on 1998-04)
# and print where the reports are and the final teacher-vs-student table.
# Extra arguments go to `dvc repro`, e.g. `bash scripts/run_migration.sh --force`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

bash scripts/setup.sh
export PATH="$root/.venv/bin:$PATH" DVC_NO_ANALYTICS=1 GX_ANALYTICS_ENABLED=False

started=$(date +%s)
crossadapt plan-days >/dev/null
dvc repro "$@"
crossadapt summary
echo "migration finished in $(( $(date +%s) - started )) s"
