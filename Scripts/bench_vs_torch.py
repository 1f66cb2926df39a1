#!/usr/bin/env python3
"""Runs `l2s bench engine` and the same ops in PyTorch CPU with the same thread count, in one run,
and prints our time ÷ PyTorch's per op (< 1 means we are faster).

Usage: python3 Scripts/bench_vs_torch.py [--l2s .build/release/l2s] [--threads 2] [--repeats 5]
Needs: torch (pip install torch). Reference only; nothing here runs at l2s run time.
"""
import argparse, json, os, subprocess, time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # PyTorch's OpenMP threads spin otherwise

import torch  # noqa: E402
import torch.nn.functional as F


def median_time(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[len(ts) // 2]


def torch_results(repeats):
    g = torch.Generator().manual_seed(1)
    out = {}
    a, b = torch.randn(1024, 1024, generator=g), torch.randn(1024, 1024, generator=g)
    with torch.no_grad():
        out["sgemm 1024"] = median_time(lambda: a @ b, repeats)
    for n, c, hw in [(32, 64, 32), (32, 128, 16)]:
        tag = f"N{n} C{c} {hw}x{hw}"
        x = torch.randn(n, c, hw, hw, generator=g)
        w = torch.randn(c, c, 3, 3, generator=g) * 0.05
        bias = torch.randn(c, generator=g)
        with torch.no_grad():
            out[f"conv3x3 fwd {tag}"] = median_time(lambda: F.conv2d(x, w, bias, padding=1), repeats)
        xg, wg, bg = x.clone().requires_grad_(), w.clone().requires_grad_(), bias.clone().requires_grad_()
        gy = torch.randn(n, c, hw, hw, generator=g)

        def fb():
            y = F.conv2d(xg, wg, bg, padding=1)
            y.backward(gy)
            xg.grad = wg.grad = bg.grad = None

        out[f"conv3x3 fwd+bwd {tag}"] = median_time(fb, repeats)
        gamma, beta = torch.ones(c), torch.zeros(c)
        with torch.no_grad():
            out[f"groupnorm32 fwd {tag}"] = median_time(lambda: F.group_norm(x, min(32, c), gamma, beta), repeats)
        gg, bg2 = gamma.clone().requires_grad_(), beta.clone().requires_grad_()

        def gn_fb():
            y = F.group_norm(xg, min(32, c), gg, bg2)
            y.backward(gy)
            xg.grad = gg.grad = bg2.grad = None

        out[f"groupnorm32 fwd+bwd {tag}"] = median_time(gn_fb, repeats)
    q, k, v = (torch.randn(32, 4, 256, 32, generator=g) for _ in range(3))
    with torch.no_grad():
        out["sdpa fwd B32 h4 L256 d32"] = median_time(lambda: F.scaled_dot_product_attention(q, k, v), repeats)
    qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))
    go = torch.randn(32, 4, 256, 32, generator=g)

    def sdpa_fb():
        F.scaled_dot_product_attention(qg, kg, vg).backward(go)
        qg.grad = kg.grad = vg.grad = None

    out["sdpa fwd+bwd B32 h4 L256 d32"] = median_time(sdpa_fb, repeats)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--l2s", default=".build/release/l2s")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    ours = json.loads(subprocess.check_output(
        [args.l2s, "bench", "engine", "--json", "--threads", str(args.threads), "--repeats", str(args.repeats)]))
    theirs = torch_results(args.repeats)
    print(f"torch {torch.__version__}, {args.threads} thread(s), median of {args.repeats}, l2s OpenBLAS kernels {ours.get('blas', '?')}, convolutions {ours.get('convolutions', '?')}")
    print(f"{'op':36s} {'l2s ms':>9s} {'torch ms':>9s} {'l2s GFLOP/s':>12s} {'l2s/torch':>10s}")
    for r in ours["results"]:
        t = theirs.get(r["name"])
        gf = r["flops"] / r["seconds"] / 1e9
        if t is None:
            print(f"{r['name']:36s} {r['seconds']*1e3:9.2f} {'-':>9s} {gf:12.1f}")
        else:
            print(f"{r['name']:36s} {r['seconds']*1e3:9.2f} {t*1e3:9.2f} {gf:12.1f} {r['seconds']/t:9.2f}x")


if __name__ == "__main__":
    main()
