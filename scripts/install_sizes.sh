#!/bin/bash
# Benchmark: what `pip install -e .` puts in a fresh virtual environment, and what each extra adds.
#
#     scripts/install_sizes.sh [VENV_DIR]      (default: a temporary folder, removed at the end)
#
# Prints the size of the venv's site-packages after each step (MB, apparent size), which of dask, distributed
# and dask-jobqueue are installed, and what `--backend dask` / `--backend slurm` say without their extra.
# torch is installed first, at the version in the README, so that the project's own share shows on its own.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
V=${1:-$(mktemp -d)/venv}
[ -n "${1:-}" ] || trap 'rm -rf "$(dirname "$V")"' EXIT
python3 -m venv "$V"
SP=$("$V/bin/python" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
size() { echo "$1: $(du -sm --apparent-size "$SP" | cut -f1) MB"; }
dask_parts() {
    local found
    found=$("$V/bin/pip" list 2>/dev/null | grep -i -E "^(dask|distributed|dask-jobqueue) " | tr -s ' ' | paste -sd, -) || true
    echo "${found:-none}"
}
pipq() { "$V/bin/pip" install -q "$@" 2>&1 | grep -v "^WARNING: Location" || true; }
size "empty venv"
pipq torch==2.14.1 torchvision==0.29.1
size "torch + torchvision"
pipq -e "$ROOT"
size "pip install -e . (base)"; echo "  dask packages: $(dask_parts)"
study="$ROOT/studies/grids/quick.toml"
for backend in dask slurm; do
    echo "  --backend $backend without its extra: $(cd /tmp && "$V/bin/python" -m studies run "$study" --backend $backend \
        --dry-run --no-bench --results "$(dirname "$V")/none" 2>&1 | tail -1)"
done
pipq -e "$ROOT[dask]"
size "with [dask]"; echo "  dask packages: $(dask_parts)"
pipq -e "$ROOT[slurm]"
size "with [slurm]"; echo "  dask packages: $(dask_parts)"
