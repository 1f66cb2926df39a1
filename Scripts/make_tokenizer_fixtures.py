#!/usr/bin/env python3
"""Reference CLIP token ids from Hugging Face transformers' CLIPTokenizer, for the Swift tokenizer tests.

Builds the SD tokenizer folder Tests/DiffusionTests/Fixtures/clip-tokenizer/ (vocab.json + merges.txt
from open-clip-torch's BPE file, see make_clip_vocab.py), then writes
Tests/DiffusionTests/Fixtures/clip-tokenizer-expected.json:
  - "cases": edge cases with ids (framed, unpadded), vocabulary symbols and Character ranges
    (HF's code-point offsets widened to the grapheme clusters, i.e. Swift Characters, that hold them);
  - "prompts": the 100 GenEval position prompts and every 5th T2I-CompBench spatial prompt, ids only;
  - "sd2": a few prompts tokenized with SD2's pad token "!" (padded to 77).

Usage: python3 Scripts/make_tokenizer_fixtures.py   (needs transformers, open-clip-torch, regex)
"""
import json
import os
import sys

import regex
from transformers import CLIPTokenizer

sys.path.insert(0, os.path.dirname(__file__))
from make_clip_vocab import write_folder  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
FIX = os.path.join(ROOT, "Tests", "DiffusionTests", "Fixtures")
folder = os.path.join(FIX, "clip-tokenizer")
write_folder(folder)
tok = CLIPTokenizer.from_pretrained(folder)
sd2 = CLIPTokenizer.from_pretrained(folder, pad_token="!")
assert tok.pad_token_id == 49407 and sd2.pad_token_id == 0


def grapheme_map(text):
    """Code-point offset → grapheme-cluster (Swift Character) offset, for every offset 0...len."""
    m, g = [], 0
    for cluster in regex.findall(r"\X", text):
        m.extend([g] * len(cluster))
        g += 1
    m.append(g)
    return m


def case(prompt, t=tok):
    e = t(prompt, return_offsets_mapping=True, truncation=True, max_length=77)
    gm = grapheme_map(prompt)
    # the clusters holding the token's first and last code points
    ranges = [[gm[a], gm[b - 1] + 1] for a, b in e["offset_mapping"][1:-1]]
    return {"prompt": prompt, "ids": e.input_ids, "symbols": t.convert_ids_to_tokens(e.input_ids)[1:-1], "ranges": ranges}


edge = [
    "a photo of an astronaut riding a horse on mars",
    "Apple CoreML developer tools on a Macbook Air are fast",
    "a dog, running!",
    "22 cats",
    "a café in Zürich",
    "a red cube to the left of a blue sphere",
    "  a  photo\tof\n an   ASTRONAUT  ",
    "It's a DOG'S life, isn't it? They'll've we'd I'm you're",
    "'''s quoted ''text'' (with brackets) [and] {braces}",
    "3.14159 and 1,000,000 cats!!! ... ?!",
    "naïve façade — crème brûlée, smörgåsbord",
    "cafe\u0301 with a decomposed accent",
    "a 🐶 and a 🐱 😀 👍🏽 👨‍👩‍👧",
    "ΟΔΟΣ ΣΟΦΙΑΣ",
    "東京タワー and ソウル",
    "x <|endoftext|> y <|startoftext|>z",
    "½ ² Ⅻ ٣ numbers",
    "tab\ttab, nbsp\u00a0here",
    " ".join(["a red cube to the left of a blue sphere"] * 9),
    "photorealistic, 8k, highly-detailed, trending on artstation, by greg rutkowski",
]
cases = [case(p) for p in edge]

geneval = [json.loads(l)["prompt"] for l in open(os.path.join(ROOT, "Tests", "SteeringTests", "Fixtures", "geneval-position.jsonl"))]
compbench = [l.strip() for l in open(os.path.join(ROOT, "Tests", "SteeringTests", "Fixtures", "t2i-compbench-spatial-train.txt")) if l.strip()][::5]
prompts = [{"prompt": p, "ids": tok(p, truncation=True, max_length=77).input_ids} for p in geneval + compbench]

sd2_prompts = ["a dog, running! ! !! !!!", "a photo of an astronaut riding a horse on mars", ""]
sd2_cases = [{"prompt": p, "ids": sd2(p, padding="max_length", truncation=True, max_length=77).input_ids} for p in sd2_prompts]
sd1_padded = {"prompt": "", "ids": tok("", padding="max_length", max_length=77).input_ids}

out = os.path.join(FIX, "clip-tokenizer-expected.json")
with open(out, "w", encoding="utf-8") as f:
    json.dump({"generator": "Scripts/make_tokenizer_fixtures.py", "transformers": __import__("transformers").__version__,
               "cases": cases, "prompts": prompts, "sd2": sd2_cases, "sd1_empty_padded": sd1_padded}, f, ensure_ascii=False, indent=0)
print(f"wrote {out}: {len(cases)} cases, {len(prompts)} prompts ({os.path.getsize(out)} bytes)")
for c in cases:
    print(c["prompt"][:60], c["ids"][:14])
