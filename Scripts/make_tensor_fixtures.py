#!/usr/bin/env python3
"""Generates the PyTorch reference fixtures for the Tensors parity tests.

Writes Tests/TensorsTests/Fixtures/torch_parity.safetensors: fixed inputs (from a seeded torch
generator) and PyTorch's outputs and input-gradients for conv2d, group norm, layer norm, scaled
dot-product attention (with probabilities), bilinear resize (align_corners=False), nearest 2x
upsample, GELU (exact and tanh), SiLU, softmax/log-softmax and cross-entropy.
The Swift tests load the inputs from the file (our RNG differs from torch's) and compare.

Usage: python3 Scripts/make_tensor_fixtures.py   (needs torch and safetensors from PyPI)
"""
import os
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

torch.manual_seed(0)
g = torch.Generator().manual_seed(1234)
T = {}


def rnd(*shape, scale=1.0):
    return torch.randn(*shape, generator=g, dtype=torch.float64) * scale


def record(name, fn, inputs, upstream_seed_shape=None):
    """Stores inputs, output and d(sum(out * r))/d input for each input (r random, stored too)."""
    xs = [x.clone().requires_grad_(True) for x in inputs]
    y = fn(*xs)
    r = rnd(*y.shape)
    (y * r).sum().backward()
    for i, x in enumerate(inputs):
        T[f"{name}.in{i}"] = x.float()
        grad = xs[i].grad if xs[i].grad is not None else torch.zeros_like(x)  # output does not depend on it
        T[f"{name}.grad{i}"] = grad.float()
    T[f"{name}.out"] = y.detach().float()
    T[f"{name}.upstream"] = r.float()


# conv2d: stride 1 pad 1, stride 2 pad 1, 1x1
record("conv_s1p1", lambda x, w, b: F.conv2d(x, w, b, stride=1, padding=1), [rnd(2, 3, 7, 6), rnd(5, 3, 3, 3, scale=0.3), rnd(5)])
record("conv_s2p1", lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1), [rnd(2, 4, 8, 9), rnd(6, 4, 3, 3, scale=0.3), rnd(6)])
record("conv_1x1", lambda x, w, b: F.conv2d(x, w, b), [rnd(2, 6, 5, 5), rnd(3, 6, 1, 1, scale=0.3), rnd(3)])
# group norm (eps 1e-5 and 1e-6), layer norm
record("groupnorm", lambda x, w, b: F.group_norm(x, 4, w, b, eps=1e-5), [rnd(2, 8, 5, 4, scale=2.0) + 0.5, rnd(8), rnd(8)])
record("groupnorm_eps6", lambda x, w, b: F.group_norm(x, 2, w, b, eps=1e-6), [rnd(3, 4, 6), rnd(4), rnd(4)])
record("layernorm", lambda x, w, b: F.layer_norm(x, (10,), w, b, eps=1e-5), [rnd(3, 4, 10, scale=3.0), rnd(10), rnd(10)])
# attention: output and probabilities
def attn_out(q, k, v):
    return F.scaled_dot_product_attention(q, k, v)
def attn_probs(q, k, v):
    return torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
qkv = [rnd(2, 3, 6, 8), rnd(2, 3, 5, 8), rnd(2, 3, 5, 4)]
record("sdpa", attn_out, qkv)
record("sdpa_probs", attn_probs, qkv)
# bilinear resize, align_corners=False, the steering code's cases (64/32/8 -> 16) and odd ones
for name, shape, size in [("bilinear_64_16", (1, 2, 64, 64), (16, 16)), ("bilinear_32_16", (1, 2, 32, 32), (16, 16)),
                          ("bilinear_8_16", (2, 3, 8, 8), (16, 16)), ("bilinear_5x7_3x11", (1, 2, 5, 7), (3, 11))]:
    record(name, lambda x, s=size: F.interpolate(x, size=s, mode="bilinear", align_corners=False), [rnd(*shape)])
record("nearest2x", lambda x: F.interpolate(x, scale_factor=2, mode="nearest"), [rnd(2, 3, 4, 5)])
# point-wise
record("gelu", lambda x: F.gelu(x), [rnd(4, 9, scale=3.0)])
record("gelu_tanh", lambda x: F.gelu(x, approximate="tanh"), [rnd(4, 9, scale=3.0)])
record("silu", lambda x: F.silu(x), [rnd(4, 9, scale=3.0)])
record("softmax", lambda x: torch.softmax(x, dim=-1), [rnd(3, 7, scale=4.0)])
record("log_softmax", lambda x: torch.log_softmax(x, dim=-1), [rnd(3, 7, scale=4.0)])
targets = torch.tensor([2, 0, 4, 1])
record("cross_entropy", lambda x: F.cross_entropy(x, targets).reshape(1), [rnd(4, 5, scale=2.0)])
T["cross_entropy.targets"] = targets.float()

out = os.path.join(os.path.dirname(__file__), "..", "Tests", "TensorsTests", "Fixtures", "torch_parity.safetensors")
save_file({k: v.contiguous() for k, v in T.items()}, out, metadata={"torch": torch.__version__, "script": "Scripts/make_tensor_fixtures.py"})
print(f"wrote {len(T)} tensors to {os.path.normpath(out)} ({os.path.getsize(out)} bytes)")
