#!/usr/bin/env bash
# Create bench/.venv-fuxictr with FuxiCTR 2.3.10 on the CPU build of torch 2.13.0.
# The project's own venv is never touched. Rerunning reuses an existing venv.
set -euo pipefail

bench_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${bench_dir}/.venv-fuxictr"
constraints="$(mktemp)"
trap 'rm -f "${constraints}"' EXIT

if [[ ! -x "${venv}/bin/python" ]]; then
    python3.11 -m venv "${venv}"
fi
"${venv}/bin/python" -m pip install --quiet --upgrade pip

# fuxictr's own requirements must not replace torch with another build.
echo "torch==2.13.0" > "${constraints}"
"${venv}/bin/python" -m pip install --quiet -c "${constraints}" torch==2.13.0 fuxictr==2.3.10 psutil

"${venv}/bin/python" - <<'PY'
import sys

import fuxictr
import torch

if torch.version.cuda is not None:
    sys.exit(f"torch {torch.__version__} is a CUDA build (cuda {torch.version.cuda}); "
             "the benchmark needs the CPU build: remove bench/.venv-fuxictr and fix the pip index")
print(f"fuxictr {fuxictr.__version__}, torch {torch.__version__} (CPU build)")
PY
