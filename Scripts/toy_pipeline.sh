#!/usr/bin/env bash
# The embedded model's whole pipeline, in order, as it produced the numbers in README.md.
# Each step is resumable or cheap to repeat; logs and results go to runs/ (not committed).
#   bash Scripts/toy_pipeline.sh [from-step]
#   steps: base data classifiers steered single handcrafted paper chains sources table
# (The README's numbers came from these commands run one by one; the paper row's eval ran as 8 shards.)
# Evaluations run as two one-thread shards side by side (the machine has 2 cores) and are merged.
set -euo pipefail
cd "$(dirname "$0")/.."
L2S=${L2S:-.build/release/l2s}
STEPS=5,10,15,20,25,30,35,49        # denoising steps whose maps are recorded
mkdir -p runs/eval
from=${1:-base}
started=0
step() { [ "$1" = "$from" ] && started=1; [ $started = 1 ]; }

# The tuning list (never the held-out set): the 56 ordered pairs of distinct classes, in catalogue
# order, with "to the right of" — runs/tune/tune56.txt, rebuilt here on a machine that lacks it.
mkdir -p runs/tune
if [ ! -s runs/tune/tune56.txt ]; then
  classes=("red circle" "blue square" "green triangle" "yellow star" "purple diamond" "orange ring" "white cross" "cyan bar")
  article() { case $1 in [aeiou]*) echo an;; *) echo a;; esac; }
  for a in "${classes[@]}"; do for b in "${classes[@]}"; do [ "$a" = "$b" ] && continue
    echo "$(article "$a") $a to the right of $(article "$b") $b"; done; done > runs/tune/tune56.txt
fi

# Two shards of one evaluation in parallel, then merged: eval2 NAME ARGS...
eval2() {
  local name=$1; shift
  for i in 0 1; do $L2S eval --threads 1 --shard $i/2 --out runs/eval/$name-$i.jsonl "$@" >/dev/null 2>runs/eval/$name-$i.err & done
  wait
  cat runs/eval/$name-0.jsonl runs/eval/$name-1.jsonl > runs/eval/$name.jsonl
  $L2S eval merge runs/eval/$name.jsonl | tee runs/eval/$name.txt
}

# 0. The base model (≈ 1 h on 2 cores): l2s train-base --steps 3600 --batch-size 32 --lr 1e-3 --export Assets/toy
if step base; then eval2 base --seeds 1; fi

# 1. Classifier data from the base model's own attention, both sources, the same step set:
#    300 scenes by DDIM inversion (the paper's source; 1 fixed-point iteration per step, PSNR gate 20 dB)
#    and 2000 by forward noising (the first 300 of which are the same scenes).
if step data; then
  $L2S build-dataset --source inversion --scenes 300 --shard-size 100 --steps $STEPS --out runs/dataset-inv --seed 1 2>&1 | tail -1
  $L2S build-dataset --source forward-noising --scenes 2000 --shard-size 100 --steps $STEPS --out runs/dataset-fn8 --seed 1 2>&1 | tail -1
  mkdir -p runs/dataset-fn300 && for k in 0 1 2; do ln -sf ../dataset-fn8/shard-000$k.safetensors runs/dataset-fn300/; done
fi

# 2. Classifiers (d_model 64): inversion vs forward noising at equal size, with and without mirrored
#    maps (--flips), and both sources together — the last, with flips, is the shipped one.
if step classifiers; then
  train() { local name=$1; shift; $L2S train-classifier --epochs 12 --lr 1e-3 "$@" --out runs/classifier-$name.safetensors 2>runs/classifier-$name.log | tee runs/classifier-$name.txt; }
  train inv --data runs/dataset-inv
  train fn300 --data runs/dataset-fn300
  train inv-flips --data runs/dataset-inv --flips --epochs 16
  train fn300-flips --data runs/dataset-fn300 --flips --epochs 16
  train both --data runs/dataset-inv,runs/dataset-fn8
  train both-flips --data runs/dataset-inv,runs/dataset-fn8 --flips
  cp runs/classifier-both-flips.safetensors Assets/toy/classifier.safetensors
fi

# 3. Steering, on the same prompts and seeds as the base run. Settings from a sweep on the 56 "left of"
#    prompts (README): 5 iterations, normalised step 0.1, steps [0, 30) of 50.
S="--iterations 5 --step-size 0.1 --steer-steps 0:30"
if step steered; then eval2 steered-dual --seeds 1 --steer $S --label steered-dual; fi
if step single; then
  $L2S train-classifier --data runs/dataset-inv,runs/dataset-fn8 --epochs 12 --lr 1e-3 --flips --positive-only --out runs/classifier-single.safetensors 2>runs/classifier-single.log | tee runs/classifier-single.txt
  eval2 steered-single --seeds 1 --steer $S --classifier runs/classifier-single.safetensors --label steered-single
fi
if step handcrafted; then eval2 handcrafted --seeds 1 --steer --loss handcrafted $S --label steered-handcrafted; fi
if step paper; then eval2 paper --seeds 1 --steer --paper --label steered-paper; fi   # the paper's plain step: ~7× base time
if step chains; then eval2 chains --preset chains --seeds 1 --compare $S --label steered-dual; fi
# 4. Classifier data sources at equal CPU time on the shipped weights (README "Classifier data sources"):
#    ~600 s of 2 threads each (scene counts from a 32-scene probe of each source), two common test sets
#    (sampled trajectories, seed 77; inversions, seed 78), classifiers with --flips, then each one steering
#    the tuning set (56 "to the right of" prompts × 3 seeds from 50,000; runs/tune/tune56.txt).
if step sources; then
  for spec in "inversion 270" "forward-noising 4500" "sampling 850"; do set -- $spec
    $L2S build-dataset --source $1 --scenes $2 --shard-size 50 --steps $STEPS --out runs/src/$1 --seed 1 --threads 2 2>&1 | tail -1; done
  $L2S build-dataset --source sampling --scenes 300 --shard-size 50 --steps $STEPS --out runs/src/test-sampling --seed 77 --threads 2 2>&1 | tail -1
  $L2S build-dataset --source inversion --scenes 60 --shard-size 30 --steps $STEPS --out runs/src/test-inversion --seed 78 --threads 2 2>&1 | tail -1
  srctrain() { local name=$1; shift; $L2S train-classifier --epochs 16 --lr 1e-3 --flips "$@" --test runs/src/test-sampling --test runs/src/test-inversion \
               --out runs/src/classifier-$name.safetensors --threads 2 2>runs/src/classifier-$name.log | tee runs/src/classifier-$name.txt; }
  srctrain inversion --data runs/src/inversion
  srctrain sampling --data runs/src/sampling
  srctrain fn --data runs/src/forward-noising
  srctrain inversion-single --data runs/src/inversion --positive-only
  srctrain sampling-single --data runs/src/sampling --positive-only
  srctrain all --data runs/src/inversion,runs/src/forward-noising,runs/src/sampling
  for c in inversion sampling fn all; do
    $L2S eval --prompts runs/tune/tune56.txt --seeds 3 --first-seed 50000 --steer --threads 2 --label $c \
      --classifier runs/src/classifier-$c.safetensors --out runs/src/tune-$c.jsonl | tee runs/src/tune-$c.txt; done
fi
if step table; then
  $L2S eval merge runs/eval/base.jsonl runs/eval/steered-dual.jsonl runs/eval/steered-single.jsonl runs/eval/handcrafted.jsonl runs/eval/paper.jsonl
fi
