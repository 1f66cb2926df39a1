#!/usr/bin/env python3
"""The embedded model's training step in l2s and in PyTorch CPU, same architecture, batch and threads,
in one run; prints both and l2s's time ÷ PyTorch's (< 1 means l2s is faster).

The PyTorch side builds the architecture from the model's config.json exactly as the shipped weights
are laid out: diffusers `UNet2DConditionModel.from_config(config["unet"])` and transformers'
`CLIPTextModel` with the `text_encoder` values, then times what `l2s train-base` does per step: text
encoder + UNet forward, DDPM ε-loss with min-SNR-5 weights, backward, clip-grad-norm 1, AdamW, EMA.
(l2s also renders its batch of scenes in the timed step: ~0.2 ms of a step that takes hundreds.)

Usage: python3 Scripts/bench_train_vs_torch.py [--l2s .build/release/l2s] [--threads 2] [--batches 32,64]
       [--repeats 5] [--config Assets/toy/config.json]
Run it on a quiet machine: PyTorch's OpenMP threads spin while other processes run (the script sets
OMP_WAIT_POLICY=PASSIVE unless it is set). Reference only; nothing here runs at l2s run time.
"""
import argparse, json, os, subprocess

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402  (after the OpenMP setting)

from bench_vs_torch import median_time  # noqa: E402  (one warm-up call, then the median of `repeats`)


def torch_step_seconds(config, batch, repeats):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(config["unet"])
    te = config["text_encoder"]
    text = CLIPTextModel(CLIPTextConfig(
        vocab_size=te["vocab_size"], hidden_size=te["hidden_size"], intermediate_size=te["intermediate_size"],
        num_attention_heads=te["num_attention_heads"], num_hidden_layers=te["num_hidden_layers"],
        max_position_embeddings=te["max_position_embeddings"], hidden_act=te["hidden_act"],
        layer_norm_eps=te["layer_norm_eps"], pad_token_id=0, bos_token_id=0, eos_token_id=1, attn_implementation="sdpa"))
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    ema = [p.detach().clone() for p in params]
    sched = config["scheduler"]
    betas = torch.linspace(sched["beta_start"], sched["beta_end"], sched["num_train_timesteps"], dtype=torch.float64)
    alphas = torch.cumprod(1 - betas, 0)
    size, tokens = config["image_size"], config["max_tokens"]
    g = torch.Generator().manual_seed(1)

    def step():
        x0 = torch.rand(batch, 3, size, size, generator=g) * 2 - 1
        ids = torch.randint(0, te["vocab_size"], (batch, tokens), generator=g)
        t = torch.randint(0, len(alphas), (batch,), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        ab = alphas[t].float().view(-1, 1, 1, 1)
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * noise
        snr = alphas[t] / (1 - alphas[t])
        w = (torch.clamp(snr, max=5.0) / snr).float()
        context = text(ids).last_hidden_state
        pred = unet(xt, t, encoder_hidden_states=context).sample
        loss = (((pred - noise) ** 2).mean(dim=(1, 2, 3)) * w).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - 0.999)

    return median_time(step, repeats)


def l2s_step_seconds(args, batch):
    ours = json.loads(subprocess.check_output(
        [args.l2s, "bench", "train", "--json", "--threads", str(args.threads), "--batches", str(batch),
         "--repeats", str(args.repeats), "--config", args.config]))
    (result,) = ours["results"]
    return result["seconds"], f"{ours.get('blas', '?')}, convolutions {ours.get('convolutions', '?')}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--l2s", default=".build/release/l2s")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batches", default="32,64")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3,
                   help="l2s and PyTorch alternate this many times per batch (the machine's speed drifts; "
                        "each round's ratio is printed, and the ratio of the medians)")
    p.add_argument("--config", default="Assets/toy/config.json")
    args = p.parse_args()
    if args.rounds < 1 or args.repeats < 1:
        p.error("--rounds and --repeats must be ≥ 1")
    torch.set_num_threads(args.threads)
    config = json.load(open(args.config))
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.repeats} steps per round, "
          f"{args.rounds} alternating rounds, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, config {args.config}")
    print(f"{'training step':18s} {'l2s ms':>9s} {'torch ms':>9s} {'l2s img/s':>10s} {'torch img/s':>12s} "
          f"{'l2s/torch':>10s}  per round")
    for batch in [int(b) for b in args.batches.split(",")]:
        ours, theirs = [], []
        for _ in range(args.rounds):
            seconds, blas = l2s_step_seconds(args, batch)
            ours.append(seconds)
            theirs.append(torch_step_seconds(config, batch, args.repeats))
        a, b = sorted(ours)[len(ours) // 2], sorted(theirs)[len(theirs) // 2]
        rounds = " ".join(f"{o / t:.2f}" for o, t in zip(ours, theirs))
        print(f"{'batch ' + str(batch):18s} {a*1e3:9.1f} {b*1e3:9.1f} {batch/a:10.1f} {batch/b:12.1f} "
              f"{a/b:9.2f}x  {rounds}")
    print(f"l2s OpenBLAS kernels: {blas}")


if __name__ == "__main__":
    main()
