#!/usr/bin/env bash
# The worker's GPU checks, for a lent GPU machine that has PyTorch and transformers but no network.
# Results go to $OUT. SmolLM2's GGUF (98 MB) travels in two parts made by
#   split -n 2 -d SmolLM2-135M-Instruct.Q4_1.gguf .device/smollm2.gguf.part
# and two calls in a row (a call carries at most 64 MiB):
#   bash scripts/device_check.sh bench     # carries .device/smollm2.gguf.part00: stashes it, runs bench_worker
#   bash scripts/device_check.sh quality   # carries part01, the gguf wheel and the data: SmolLM2 L3 fine-tuning
set -uo pipefail
OUT=${OUT:-/tmp/dgpt-out}
mkdir -p "$OUT"
export PYTHONPATH=$PWD
GGUF=/tmp/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)" | tee -a "$OUT/gpu.txt"

case "${1:-}" in
bench)
  mkdir -p /tmp/smollm2 && cp .device/smollm2.gguf.part00 /tmp/smollm2/part00
  timeout 400 python scripts/bench_worker.py --model gpt2-124m --seq-len 512 --batch 32 --json \
    > "$OUT/bench_worker.json" 2> "$OUT/bench_worker.log"
  echo "bench_worker exit $?"; grep -v '^\[transformers\]' "$OUT/bench_worker.log" | tail -5; tail -1 "$OUT/bench_worker.json"
  ;;
quality)
  [ -f "$GGUF" ] || cat /tmp/smollm2/part00 .device/smollm2.gguf.part01 > "$GGUF"
  sha256sum "$GGUF" | grep -q '^b179c9523d0e6a0f' || { echo "GGUF checksum mismatch (part00 missing?)"; exit 1; }
  python -m pip install --quiet --no-deps --no-index .device/gguf-*.whl
  for lam in 0.5 0; do
    timeout 280 python scripts/bench_quality.py --model smollm2 --gguf "$GGUF" \
      --data .device/rotten_tomatoes_corpus_full.csv.bz2 --lambdas "$lam" --json \
      > "$OUT/quality_lambda_$lam.json" 2> "$OUT/quality_lambda_$lam.log"
    echo "bench_quality λ=$lam exit $?"; grep -E 'λ=|majority|parameters' "$OUT/quality_lambda_$lam.log"
  done
  ;;
*)
  echo "usage: $0 bench|quality" >&2; exit 2 ;;
esac
