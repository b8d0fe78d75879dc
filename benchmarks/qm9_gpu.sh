#!/usr/bin/env bash
# The device step of benchmarks/qm9_generation.py, as one call on the lent GPU machine:
#
#   run(command="bash benchmarks/qm9_gpu.sh", carry=[".qm9gpu"], timeout_s=560)
#
# The machine has torch, torch-geometric and e3nn but not omegaconf, hydra-core (and antlr4),
# rdkit or qm9pack.  .qm9gpu/ (git-ignored, prepared by `qm9_gpu.sh --prepare` here) holds
#   wheels/   omegaconf, hydra-core, antlr4-python3-runtime (installed into /tmp/site),
#   cache/    the parsed QM9 table (qm9pack-*.npz; molgen.qm9 reads it without qm9pack),
#   data/     qm9/edm_split_gdb9_index_1based.npz (EDM's split).
# Arguments after the script go to `qm9_generation.py device`; PYTHON picks the interpreter.
# `qm9_gpu.sh --then CMD ...` runs CMD in the same environment instead, e.g.
#   bash benchmarks/qm9_gpu.sh --then python3 benchmarks/qm9_conditional.py regressor --device cuda ...
set -uo pipefail
SETUP=${QM9_SETUP:-.qm9gpu}

if [[ ${1:-} == --prepare ]]; then  # here, once: gather what the device needs into $SETUP
    set -e
    mkdir -p "$SETUP/wheels" "$SETUP/cache" "$SETUP/data/qm9"
    grep -qx "/$SETUP/" .git/info/exclude || echo "/$SETUP/" >> .git/info/exclude
    cp .whl/omegaconf-*.whl .whl/hydra_core-*.whl .whl/antlr4_python3_runtime-*.whl "$SETUP/wheels/"
    cp "${MOLGEN_CACHE:-$HOME/.cache/molgen}"/qm9pack-*.npz "$SETUP/cache/"
    cp "${MOLGEN_DATA:-../shared/data}/qm9/edm_split_gdb9_index_1based.npz" "$SETUP/data/qm9/"
    du -sh "$SETUP"
    exit 0
fi

OUT=${OUT:?set OUT to the folder whose files come back}
PYTHON=${PYTHON:-python3}
$PYTHON -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$SETUP"/wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 \
    MOLGEN_CACHE=$PWD/$SETUP/cache MOLGEN_DATA=$PWD/$SETUP/data
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true; } 2>&1 \
    | tee "$OUT/device.log"
if [[ ${1:-} == --then ]]; then
    shift
    "$@" 2>&1 | tee -a "$OUT/device.log"
else
    $PYTHON benchmarks/qm9_generation.py device --out "$OUT" "$@" 2>&1 | tee -a "$OUT/device.log"
fi
