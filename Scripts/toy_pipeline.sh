#!/usr/bin/env bash
# The embedded model's whole pipeline, in order, as it produced the numbers in README.md.
# Each step is resumable or cheap to repeat; logs and results go to runs/ (not committed).
#   bash Scripts/toy_pipeline.sh [from-step]     steps: base dataset classifier steered single handcrafted chains paper
set -euo pipefail
cd "$(dirname "$0")/.."
L2S=${L2S:-.build/release/l2s}
mkdir -p runs/eval
from=${1:-base}
started=0
step() { [ "$1" = "$from" ] && started=1; [ $started = 1 ]; }

# 0. The base model (≈ 1 h 15 min on 2 cores): l2s train-base --steps 3600 --batch-size 32 --lr 1e-3 --export Assets/toy
if step base; then
  $L2S eval --seeds 1 --out runs/eval/base.jsonl | tee runs/eval/base.txt
fi
if step dataset; then
  $L2S build-dataset --images 2000 --out runs/dataset-fn 2>&1 | tail -1
fi
if step classifier; then
  $L2S train-classifier --data runs/dataset-fn --out Assets/toy/classifier.safetensors 2>runs/classifier-dual.log | tee runs/classifier-dual.txt
fi
if step steered; then
  $L2S eval --seeds 1 --steer --label steered-dual --out runs/eval/steered-dual.jsonl | tee runs/eval/steered-dual.txt
fi
if step single; then
  $L2S train-classifier --data runs/dataset-fn --positive-only --out runs/classifier-single.safetensors 2>runs/classifier-single.log | tee runs/classifier-single.txt
  $L2S eval --seeds 1 --steer --classifier runs/classifier-single.safetensors --label steered-single --out runs/eval/steered-single.jsonl | tee runs/eval/steered-single.txt
fi
if step handcrafted; then
  $L2S eval --seeds 1 --steer --loss handcrafted --label steered-handcrafted --out runs/eval/handcrafted.jsonl | tee runs/eval/handcrafted.txt
fi
if step chains; then
  $L2S eval --preset chains --seeds 1 --compare --label steered-dual --out runs/eval/chains.jsonl | tee runs/eval/chains.txt
fi
if step paper; then
  $L2S eval --seeds 1 --steer --paper --label steered-paper --out runs/eval/paper.jsonl | tee runs/eval/paper.txt
fi
$L2S eval merge runs/eval/base.jsonl runs/eval/steered-*.jsonl runs/eval/handcrafted.jsonl runs/eval/paper.jsonl 2>/dev/null || true
