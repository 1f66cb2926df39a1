#!/usr/bin/env python3
"""Builds a CLIP tokenizer folder (vocab.json, merges.txt, tokenizer_config.json,
special_tokens_map.json) from the BPE merges that open-clip-torch ships
(open_clip/bpe_simple_vocab_16e6.txt.gz), the same data as SD's tokenizer/ folder.

CLIP's vocabulary is: the 256 byte symbols of GPT-2's byte-level map (in that table's order), the
same 256 with `</w>`, each merge joined (in rank order), then <|startoftext|> and <|endoftext|>.
With the full 48,894 merges that is 49,408 entries (SD 1.x/2.x); `--merges N` keeps only the first
N merges (a small but consistent tokenizer for tiny test models; the special tokens then get ids
512 + N and 513 + N).

Usage: python3 Scripts/make_clip_vocab.py OUT_DIR [--merges N] [--pad '!']
       (needs open-clip-torch from PyPI; checks the result against transformers' CLIPTokenizer when
       that is installed)
"""
import argparse
import gzip
import json
import os

FULL_MERGES = 49152 - 256 - 2  # what CLIP (and open_clip's SimpleTokenizer) uses of the file


def bytes_to_unicode():
    """GPT-2's reversible byte → printable-character table, in its canonical order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def open_clip_merges():
    import open_clip
    path = os.path.join(os.path.dirname(open_clip.__file__), "bpe_simple_vocab_16e6.txt.gz")
    lines = gzip.open(path).read().decode("utf-8").split("\n")
    return [tuple(line.split()) for line in lines[1:FULL_MERGES + 1]]


def write_folder(out, n_merges=FULL_MERGES, pad="<|endoftext|>"):
    merges = open_clip_merges()[:n_merges]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    assert len(set(vocab)) == len(vocab), "duplicate vocabulary entries"
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({s: i for i, s in enumerate(vocab)}, f, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(out, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{a} {b}\n")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": pad}
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump(special, f, indent=2)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump(dict(special, tokenizer_class="CLIPTokenizer", model_max_length=77, do_lower_case=True,
                       add_prefix_space=False, errors="replace"), f, indent=2)
    return len(vocab)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--merges", type=int, default=FULL_MERGES)
    ap.add_argument("--pad", default="<|endoftext|>")
    args = ap.parse_args()
    n = write_folder(args.out, args.merges, args.pad)
    print(f"wrote {args.out}: {n} vocabulary entries, {args.merges} merges")
    try:
        from transformers import CLIPTokenizer
    except ImportError:
        raise SystemExit(0)
    tok = CLIPTokenizer.from_pretrained(args.out)
    ids = tok("a photo of an astronaut riding a horse on mars").input_ids
    print("HF ids:", ids)
    if args.merges == FULL_MERGES:
        assert ids == [49406, 320, 1125, 539, 550, 18376, 6765, 320, 4558, 525, 7496, 49407], ids
