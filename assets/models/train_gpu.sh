#!/bin/bash
# Train, evaluate and benchmark the three bundled models on one GPU, from prepared atom tables.
# Needs only torch + numpy + safetensors (the GPU box has no RDKit, gemmi or PyVista).
#
#   1. here (RDKit):   molviz train 6ega     --prepare-only runs/prepared/6ega.npz
#                      molviz train freesolv --prepare-only runs/prepared/freesolv.npz
#                      molviz train nmr      --prepare-only runs/prepared/nmr.npz
#   2. on the GPU:     OUT=/tmp/out bash assets/models/train_gpu.sh      (carry runs/prepared)
#   3. here:           unpack $OUT/*.tar.gz into assets/models/, then
#                      molviz eval assets/models/freesolv --ridge --write ; add the latent map
#
# Budgets are seconds of training per model (T6EGA, TFS, TNMR); --time-budget compresses the
# cosine schedule so each run ends on time whatever the it/s, then writes the bundle.
# Each stage runs even if an earlier one failed; results are packed after every stage, since
# only a few files come back from the device machine.
set -u
PY=${PY:-python3}
OUT=${OUT:-runs/gpu}
T6EGA=${T6EGA:-140}
TFS=${TFS:-170}
TNMR=${TNMR:-50}
W=${W:-/tmp/molviz-gpu}       # bundles and logs are written here, packed into $OUT
mkdir -p "$OUT" "$W/logs"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
M="$PY -m molviz.training"
t0=$(date +%s)
step() { echo "[$(( $(date +%s) - t0 )) s] $*" | tee -a "$W/logs/steps.txt"; }
pack() {  # pack one bundle (without its checkpoint folder) and the logs so far
    [ -d "$W/$1" ] && tar -czf "$OUT/$1.tar.gz" -C "$W" --exclude=checkpoint "$1"
    tar -czf "$OUT/logs.tar.gz" -C "$W" logs
}
{ nvidia-smi -L; $PY -c "import torch, numpy, safetensors; print('torch', torch.__version__, 'numpy', numpy.__version__, torch.cuda.get_device_name())"; } 2>&1 | tee "$W/logs/device.txt"

step "engine benchmark of the shipped bundles first (issue 4's H100 targets are for these; cheap, so it runs before training)"
$PY -m molviz bench engine --device cuda --bundle assets/models/freesolv --bundle assets/models/6ega --bundle assets/models/nmr-2juy \
    --json "$W/logs/bench_engine_gpu_shipped.json" > "$W/logs/bench_engine_gpu_shipped.txt" 2>&1
tail -n 30 "$W/logs/bench_engine_gpu_shipped.txt"; tar -czf "$OUT/logs.tar.gz" -C "$W" logs

step "6ega: auto-decoder, L (8x256, latent 128), 32^3 box, continuous protocol (32768 exact points/step)"
$M train 6ega --data runs/prepared/6ega.npz --out "$W/6ega" --size L --lr 1e-3 --protocol continuous --points 32768 --channel-balance 0.5 \
    --steps 30000 --time-budget "$T6EGA" --eval-every 2000 --ckpt-every 10000 --no-progress > "$W/logs/6ega.log" 2>&1
tail -n 3 "$W/logs/6ega.log"; pack 6ega

step "freesolv: auto-encoder, M (4x256, latent 512), 32^3 per-molecule boxes, grid protocol, batch 32, 64 held out"
$M train freesolv --data runs/prepared/freesolv.npz --out "$W/freesolv" --resolution 32 --points 4096 --batch 32 \
    --channel-balance 0.5 --encoder-box \
    --steps 40000 --time-budget "$TFS" --eval-every 2000 --ckpt-every 10000 --no-progress > "$W/logs/freesolv.log" 2>&1
tail -n 3 "$W/logs/freesolv.log"; pack freesolv

step "nmr: 2JUY 24 conformers, auto-decoder, M, shared 32^3 box, continuous protocol, batch 8"
$M train nmr --data runs/prepared/nmr.npz --out "$W/nmr-2juy" --size M --lr 1e-3 --protocol continuous --points 16384 --batch 8 --channel-balance 0.5 \
    --steps 20000 --time-budget "$TNMR" --eval-every 2000 --ckpt-every 10000 --no-progress > "$W/logs/nmr.log" 2>&1
tail -n 3 "$W/logs/nmr.log"; pack nmr-2juy

step "evaluation: PSNR against the field recomputed from each bundle's atom tables (--write: BUNDLE/eval.json)"
$M eval "$W/6ega" --resolution 32 128 --write 2>&1 | tail -n 20 | tee "$W/logs/eval_6ega.txt"; pack 6ega
$M eval "$W/freesolv" --resolution 32 --items train --write 2>&1 | tail -n 20 | tee "$W/logs/eval_freesolv.txt"
$M eval "$W/freesolv" --resolution 32 128 --items heldout --write 2>&1 | tail -n 20 | tee -a "$W/logs/eval_freesolv.txt"
$M eval "$W/freesolv" --resolution 128 --items train --max-items 64 --write 2>&1 | tail -n 20 | tee -a "$W/logs/eval_freesolv.txt"
$M eval "$W/freesolv" --resolution 32 --items heldout --refine 200 --write 2>&1 | tail -n 20 | tee -a "$W/logs/eval_freesolv.txt"; pack freesolv
$M eval "$W/nmr-2juy" --resolution 32 128 --write 2>&1 | tail -n 20 | tee "$W/logs/eval_nmr.txt"; pack nmr-2juy

step "engine benchmark on the GPU (decode part; no PyVista there)"
$PY -m molviz bench engine --device cuda --bundle "$W/freesolv" --bundle "$W/6ega" --bundle "$W/nmr-2juy" \
    --json "$W/logs/bench_engine_gpu.json" > "$W/logs/bench_engine_gpu.txt" 2>&1
tail -n 30 "$W/logs/bench_engine_gpu.txt"
step "done"; pack 6ega
ls -la "$OUT"
