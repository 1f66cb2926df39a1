#!/usr/bin/env python3
"""Convert a relation-classifier checkpoint of the Learn-to-Steer authors (`torch.load` of their .pth:
{model_state_dict, rel_name_to_idx, config, ...}) to the safetensors file `l2s` loads
(`--classifier FILE`). Parameter names are kept as they are (our Swift module uses the authors'
names); the sinusoidal `positional_encoding.pe` buffers are dropped (recomputed in Swift); a
`module.` prefix (DataParallel) is stripped; sizes are read from the weight shapes and head counts
from the checkpoint's config (or the flags); the last layer's rows are reordered if the checkpoint's
class order differs from ours (above, below, is, to the left of, to the right of).

  python3 Scripts/convert_authors_classifier.py sd14.pth sd14-classifier.safetensors
  python3 Scripts/convert_authors_classifier.py --selftest Tests/SteeringTests/Fixtures

--selftest builds the classifier as l2s-method.md §3 describes it, in PyTorch, at a small size with
random weights, saves it the way the authors' `save_model` does, converts it, and records logits for
random maps: the fixture of the Swift test that loads the converted file and compares its logits.
"""
import argparse
import json
import math
import os
import re
import sys

import torch
from safetensors.torch import save_file
from torch import nn

OUR_CLASSES = ["above", "below", "is", "to the left of", "to the right of"]


def find(config, names, default):
    """The first value under any of `names` in a (nested) config dict."""
    if isinstance(config, dict):
        for k, v in config.items():
            if k in names and isinstance(v, (int, float)):
                return v
        for v in config.values():
            r = find(v, names, None)
            if r is not None:
                return r
    return default


def convert(checkpoint, out, extractor_nhead=None, classifier_nhead=None, layer_attn_nheads=None,
            training_steps="5,10,15,20,25,49"):
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False) if isinstance(checkpoint, str) else checkpoint
    state = ckpt
    for key in ("model_state_dict", "state_dict", "model"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
            break
    config = ckpt.get("config", {}) if isinstance(ckpt, dict) else {}
    tensors, dropped = {}, []
    for k, v in state.items():
        k = k[len("module."):] if k.startswith("module.") else k
        if k.endswith(".pe"):
            dropped.append(k)
            continue
        tensors[k] = v.detach().float().contiguous()
    need = ["object_extractor.input_projection.weight", "relation_classifier.timestep_embedding.weight",
            "relation_classifier.fc.8.weight"]
    missing = [k for k in need if k not in tensors]
    if missing:
        sys.exit(f"not a Learn-to-Steer relation classifier: missing {', '.join(missing)}")
    d_model, area = tensors["object_extractor.input_projection.weight"].shape
    layers = lambda prefix: len({m.group(1) for k in tensors for m in [re.match(prefix + r"\.transformer\.layers\.(\d+)\.", k)] if m})
    c = {
        "d_model": d_model,
        "map_size": int(round(math.sqrt(area))),
        "num_timesteps": tensors["object_extractor.timestep_embedding.weight"].shape[0],
        "num_classes": tensors["relation_classifier.fc.8.weight"].shape[0],
        "extractor_num_layers": layers("object_extractor"),
        "extractor_dim_feedforward": tensors["object_extractor.transformer.layers.0.linear1.weight"].shape[0],
        "classifier_num_layers": layers("relation_classifier"),
        "classifier_dim_feedforward": tensors["relation_classifier.transformer.layers.0.linear1.weight"].shape[0],
        "timestep_embedding_dim": tensors["relation_classifier.timestep_embedding.weight"].shape[1],
        "extractor_nhead": int(extractor_nhead or find(config.get("extractor", config), ["nhead", "extractor_nhead"], 2)),
        "classifier_nhead": int(classifier_nhead or find(config.get("classifier", {}), ["nhead", "classifier_nhead"], 4)),
        "extractor_layer_attn_nheads": int(layer_attn_nheads or find(config, ["layer_attn_nheads", "extractor_layer_attn_nheads"], 2)),
        "dropout": 0.0,
        "max_channels": max(1368, int(ckpt.get("input_channels", 0)) if isinstance(ckpt, dict) else 0),
        "training_steps": [int(s) for s in training_steps.split(",")],
        "input_scale": 1.0,
    }
    # Class order: reorder the last layer's rows to ours when the checkpoint names its classes.
    names = ckpt.get("rel_name_to_idx") if isinstance(ckpt, dict) else None
    if names:
        normalise = lambda s: s.replace("_", " ").strip().lower()
        by_name = {normalise(n): i for n, i in names.items()}
        if all(n in by_name for n in OUR_CLASSES):
            order = torch.tensor([by_name[n] for n in OUR_CLASSES])
            for k in ("relation_classifier.fc.8.weight", "relation_classifier.fc.8.bias"):
                tensors[k] = tensors[k][order].contiguous()
        else:
            print(f"warning: class names {sorted(names)} are not ours {OUR_CLASSES}; rows kept as they are", file=sys.stderr)
    save_file(tensors, out, metadata={"config": json.dumps(c), "format": "learn-to-steer relation classifier",
                                      "source": os.path.basename(checkpoint) if isinstance(checkpoint, str) else "selftest"})
    print(f"wrote {out}: {len(tensors)} tensors, {sum(t.numel() for t in tensors.values()):,} parameters; "
          f"dropped {dropped}; config {json.dumps(c)}")
    return c


# --- The classifier as l2s-method.md §3 describes it (for --selftest) -------------------------------------

class PositionalEncoding(nn.Module):
    def __init__(self, d, max_len):
        super().__init__()
        pos = torch.arange(max_len, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
        pe = torch.zeros(max_len, d)
        pe[:, 0::2] = torch.sin(pos * div)
        pe[:, 1::2] = torch.cos(pos * div)
        self.register_buffer("pe", pe[None])


def encoder(d, nhead, ff, dropout, n):
    layer = nn.TransformerEncoderLayer(d, nhead, ff, dropout, activation="relu", batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, n, enable_nested_tensor=False)


class CrossAttentionExtractor(nn.Module):
    def __init__(self, c, max_len):
        super().__init__()
        d, area = c["d_model"], c["map_size"] ** 2
        self.input_projection = nn.Linear(area, d)
        self.positional_encoding = PositionalEncoding(d, max_len)
        self.timestep_embedding = nn.Embedding(c["num_timesteps"], d)
        self.transformer = encoder(d, c["extractor_nhead"], c["extractor_dim_feedforward"], 0.3, c["extractor_num_layers"])
        self.query_vector = nn.Parameter(torch.randn(1, 1, d))
        self.layer_attention = nn.MultiheadAttention(d, c["extractor_layer_attn_nheads"], dropout=0.0, batch_first=True)
        self.output_projection = nn.Linear(d, area)

    def forward(self, maps, t):
        b, ch, s, _ = maps.shape
        x = self.input_projection(maps.reshape(b, ch, s * s)) + self.positional_encoding.pe[:, :ch]
        emb = self.timestep_embedding(t.long())  # (B, 1, d)
        for layer in self.transformer.layers:  # mode "mid": the step embedding before every layer
            x = layer(x + emb)
        pooled, _ = self.layer_attention(self.query_vector.expand(b, -1, -1), x, x)
        return self.output_projection(pooled[:, 0]).reshape(b, s, s)


class RelationClassifierTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, area = c["d_model"], c["map_size"] ** 2
        self.timestep_embedding = nn.Embedding(c["num_timesteps"], c["timestep_embedding_dim"])
        self.projection = nn.Linear(2 * area, d)
        self.positional_encoding = PositionalEncoding(d, 16)
        self.transformer = encoder(d, c["classifier_nhead"], c["classifier_dim_feedforward"], 0.3, c["classifier_num_layers"])
        self.fc = nn.Sequential(nn.Linear(d + c["timestep_embedding_dim"], 256), nn.LayerNorm(256), nn.LeakyReLU(0.1), nn.Dropout(0.3),
                                nn.Linear(256, 128), nn.LayerNorm(128), nn.LeakyReLU(0.1), nn.Dropout(0.3), nn.Linear(128, c["num_classes"]))

    def forward(self, x, t):
        b = x.shape[0]
        x = self.projection(x.reshape(b, -1))[:, None] + self.positional_encoding.pe[:, :1]
        x = self.transformer(x)
        return self.fc(torch.cat([x[:, 0], self.timestep_embedding(t.long())[:, 0]], dim=1))


class EnhancedRelationClassifier(nn.Module):
    def __init__(self, c, max_len):
        super().__init__()
        self.object_extractor = CrossAttentionExtractor(c, max_len)
        self.relation_classifier = RelationClassifierTransformer(c)

    def forward(self, maps, t):
        x1 = self.object_extractor(maps[:, 0], t)
        x2 = self.object_extractor(maps[:, 1], t)
        return self.relation_classifier(torch.stack([x1, x2], dim=1), t)


def selftest(fixtures):
    torch.manual_seed(0)
    c = dict(d_model=16, map_size=16, num_timesteps=50, num_classes=5, extractor_nhead=2, extractor_num_layers=2,
             extractor_dim_feedforward=24, extractor_layer_attn_nheads=2, classifier_nhead=4, classifier_num_layers=2,
             classifier_dim_feedforward=20, timestep_embedding_dim=16)
    model = EnhancedRelationClassifier(c, max_len=1368).eval()
    with torch.no_grad():  # non-trivial norm affines, so they are tested too
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.add_(0.2 * torch.randn(m.weight.shape))
                m.bias.add_(0.2 * torch.randn(m.bias.shape))
    # The authors' order of classes differs from ours here on purpose, so the row reordering is tested.
    theirs = ["to the left of", "to the right of", "above", "below", "is"]
    ckpt = {"model_state_dict": {"module." + k: v for k, v in model.state_dict().items()},
            "rel_name_to_idx": {n: i for i, n in enumerate(theirs)}, "idx_to_rel_name": dict(enumerate(theirs)),
            "input_channels": 6, "config": {"extractor": {"nhead": 2, "layer_attn_nheads": 2}, "classifier": {"nhead": 4}}}
    out = os.path.join(fixtures, "authors-classifier-converted.safetensors")
    convert(ckpt, out, training_steps="5,10,15,20,25,49")
    maps = torch.rand(3, 2, 6, 16, 16)
    maps = maps / maps.sum(dim=(-1, -2), keepdim=True)
    t = torch.tensor([[5.0], [25.0], [49.0]])
    with torch.no_grad():
        logits = model(maps, t)
    order = [theirs.index(n) for n in OUR_CLASSES]
    save_file({"maps": maps.contiguous(), "steps": t[:, 0].contiguous(), "logits": logits[:, order].contiguous()},
              os.path.join(fixtures, "authors-classifier-reference.safetensors"),
              metadata={"script": "Scripts/convert_authors_classifier.py --selftest", "torch": torch.__version__})
    print(f"selftest: logits {logits[:, order].tolist()}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--selftest", metavar="FIXTURES_DIR")
    ap.add_argument("--extractor-nhead", type=int)
    ap.add_argument("--classifier-nhead", type=int)
    ap.add_argument("--layer-attn-nheads", type=int)
    ap.add_argument("--training-steps", default="5,10,15,20,25,49",
                    help="denoising step indices the classifier was trained on (comma-separated)")
    a = ap.parse_args()
    if a.selftest:
        selftest(a.selftest)
    elif a.checkpoint and a.out:
        convert(a.checkpoint, a.out, a.extractor_nhead, a.classifier_nhead, a.layer_attn_nheads, a.training_steps)
    else:
        ap.error("give CHECKPOINT OUT, or --selftest FIXTURES_DIR")
