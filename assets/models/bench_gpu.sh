#!/bin/bash
# Issue 4's GPU figures in one short run (about 3 minutes): `molviz bench engine` on the shipped bundles.
# Needs only torch + numpy + safetensors (the GPU box has no RDKit, gemmi or PyVista).
#
#   on the GPU:  OUT=$OUT bash assets/models/bench_gpu.sh     (nothing to carry: the bundles are tracked)
#   a dry run here (CPU, small sizes, no nvidia-smi needed): DEVICE=cpu QUICK=--quick bash assets/models/bench_gpu.sh
#   here:        read $OUT/bench_engine_gpu.txt; the README's Benchmarks section takes its rows
set -u
PY=${PY:-python3}
OUT=${OUT:-runs/gpu}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:-}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
{ nvidia-smi -L; $PY -c "import torch, numpy, safetensors; print('torch', torch.__version__, 'numpy', numpy.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"; } 2>&1 | tee "$OUT/device.txt"
# The first bundle also gets the torch.compile row (tens of seconds of compiling).
$PY -m molviz bench engine --device "$DEVICE" $QUICK --bundle assets/models/freesolv --bundle assets/models/6ega \
    --bundle assets/models/nmr-2juy --json "$OUT/bench_engine_gpu.json" 2>&1 | tee "$OUT/bench_engine_gpu.txt"
