#!/usr/bin/env python3
"""Seconds per Stable Diffusion UNet step with CFG (batch 2) at 256 and 512 px, and seconds to load the
whole folder (tokenizer, text encoder, UNet, VAE): diffusers (PyTorch CPU) and `l2s bench unet` on the
same diffusers folder and thread count, measured in one run; prints our time ÷ PyTorch's. Use a
folder from `Scripts/make_sd_fixtures.py --full DIR sd15` (real config, random weights) or a real one.

  python3 Scripts/bench_sd_unet.py --folder /work/sdfull/sd15/model --fp16 --threads 2 --repeats 3
"""
import argparse
import json
import statistics
import subprocess
import time

import torch
from diffusers import StableDiffusionPipeline, UNet2DConditionModel


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--folder", required=True)
    p.add_argument("--l2s", default=".build/release/l2s")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sizes", default="256,512")
    p.add_argument("--fp16", action="store_true", help="the folder has .fp16.safetensors weights (computed in fp32)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    sizes = [int(s) for s in a.sizes.split(",")]
    start = time.perf_counter()
    pipe = StableDiffusionPipeline.from_pretrained(a.folder, variant="fp16" if a.fp16 else None, torch_dtype=torch.float32,
                                                   safety_checker=None, requires_safety_checker=False)
    torch_load = time.perf_counter() - start
    print(f"torch folder load: {torch_load:.2f} s", flush=True)
    del pipe
    unet = UNet2DConditionModel.from_pretrained(a.folder, subfolder="unet", variant="fp16" if a.fp16 else None,
                                                torch_dtype=torch.float32).eval()
    ctx_dim = unet.config.cross_attention_dim
    torch_s = {}
    with torch.no_grad():
        for size in sizes:
            x = torch.randn(2, 4, size // 8, size // 8)
            ctx = torch.randn(2, 77, ctx_dim)
            t = torch.tensor([500, 500])
            unet(x, t, encoder_hidden_states=ctx)  # warm-up
            times = []
            for _ in range(a.repeats):
                s = time.perf_counter()
                unet(x, t, encoder_hidden_states=ctx)
                times.append(time.perf_counter() - s)
            torch_s[size] = statistics.median(times)
            print(f"torch {size}: {torch_s[size]:.2f} s", flush=True)
    del unet
    cmd = [a.l2s, "bench", "unet", "--model", a.folder, "--sizes", a.sizes, "--repeats", str(a.repeats),
           "--threads", str(a.threads), "--json"] + (["--fp16"] if a.fp16 else [])
    ours = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    print(f"| size | l2s s/step | PyTorch s/step | l2s ÷ PyTorch |  ({a.threads} threads, median of {a.repeats}, torch {torch.__version__})")
    print("|---|---|---|---|")
    results = {r["name"]: r["seconds"] for r in ours["results"]}
    for size in sizes:
        ours_s = results[f"unet step cfg {size}"]
        print(f"| {size}×{size} | {ours_s:.2f} | {torch_s[size]:.2f} | {ours_s / torch_s[size]:.2f}× |")
    print(f"| folder load | {results['folder load']:.2f} | {torch_load:.2f} | {results['folder load'] / torch_load:.2f}× |")


if __name__ == "__main__":
    main()
