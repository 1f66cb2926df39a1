#!/usr/bin/env python3
"""Tiny random Stable-Diffusion-shaped pipelines and their reference outputs, for the Swift parity tests.

Writes, under Tests/DiffusionTests/Fixtures/:
  tiny-sd/   SD 1.x-shaped diffusers folder: conv proj_in/out, 2 heads, quick_gelu CLIP, pad <|endoftext|>,
             epsilon, scheduler saved as PNDMScheduler (as SD 1.5 ships it; sampled with DDIM), fp32
             weights, and text-encoder keys as transformers < 5 wrote them (under `text_model.`, with
             the I64 `text_model.embeddings.position_ids` buffer).
  tiny-sd2/  SD 2.x-shaped: linear proj_in/out, per-block heads [2, 4], gelu CLIP, pad "!" (id 0),
             v_prediction DDIMScheduler, only `.fp16.safetensors` weights, text-encoder keys as
             transformers 5 writes them (no `text_model.` prefix), and the VAE's mid-block
             attention under the legacy query/key/value/proj_attn names with 1×1-conv-shaped weights.
  tiny-sd-reference.safetensors, tiny-sd2-reference.safetensors: fixed inputs and PyTorch outputs:
    ids            token ids of [prompt, ""] (77 each)
    text           text encoder last_hidden_state for them            [2, 77, 32]
    unet.x, unet.t, unet.out     one UNet call (batch 2, one timestep per item, context = text)
    attn.probs     that call's cross-attention probabilities of up_blocks.1.attentions.0 ... attn2
                   [batch, heads, H·W, 77]
    vae.z, vae.decoded           vae.decode(z) (raw decoder output, no scaling or clamping)
    vae.x, vae.mean              vae.encode(x).latent_dist.mean
    ddim.latents, ddim.out, ddim.image   StableDiffusionPipeline(prompt, 3 DDIM steps, guidance 7.5,
                   latents given) → final latents, and the decoded image in [0, 1] (NCHW)
Component sizes are tiny (channels 8/16, 2 groups, 2 CLIP layers of width 32, a 1,000-entry BPE
vocabulary = the first 486 merges) so the folders stay in the tens of KB. Weights are random; norm
affines are perturbed so they are tested too. fp16 files hold the same (rounded) weights the
references were computed with.

  sd-structure.json: key → shape listings of SD 1.5/SD 2-shaped UNet, VAE and CLIP at reduced widths
    but full depth, with their configs (`--structure` writes only this file).

  --full DIR [sd15|sd21]: the REAL SD 1.5 or SD 2.1-base configs (UNet 320/640/1280/1280, CLIP ViT-L/14 or
    OpenCLIP ViT-H text encoder with the full 49,408-token vocabulary, VAE 128/256/512/512) with random weights,
    saved as DIR/model (a diffusers folder, fp16 weight files; the references are computed with exactly those
    rounded weights) and DIR/reference.safetensors with the same keys as the tiny references, at 512×512 for the
    UNet call (latents 64×64) and 256×256 for the VAE and the 3 DDIM steps. Several GB; not committed.
    Check with: l2s verify --against DIR --fp16

Usage: python3 Scripts/make_sd_fixtures.py [--structure]   (needs torch, diffusers, transformers, open-clip-torch)
       python3 Scripts/make_sd_fixtures.py --full /tmp/sd15-random sd15
       python3 Scripts/make_sd_fixtures.py --dpm      (DPM-Solver++ references for the committed tiny folders)
"""
import json
import os
import shutil
import sys

import torch
from diffusers import AutoencoderKL, DDIMScheduler, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.models.attention_processor import AttnProcessor
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

sys.path.insert(0, os.path.dirname(__file__))
from make_clip_vocab import write_folder  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), ".."))
FIX = os.path.join(ROOT, "Tests", "DiffusionTests", "Fixtures")
PROMPT = "a red cube to the left of a blue sphere"
MERGES = 486  # vocabulary of 1,000
CAPTURED = "up_blocks.1.attentions.0.transformer_blocks.0.attn2"  # the cross-attention at 8×8 on the way up


class RecordingProcessor(AttnProcessor):
    """The plain attention processor, keeping the probabilities it computes."""

    def __init__(self):
        self.probs = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
        original = attn.get_attention_scores

        def scores(q, k, mask=None):
            p = original(q, k, mask)
            self.probs = p.detach().clone()
            return p

        attn.get_attention_scores = scores
        try:
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)
        finally:
            del attn.get_attention_scores


def perturb_norms(module, g):
    for name, m in module.named_modules():
        if isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
            with torch.no_grad():
                m.weight.add_(0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.add_(0.2 * torch.randn(m.bias.shape, generator=g))


def make_pipeline(unet, vae, text_encoder, tokenizer, scheduler, g, round_fp16):
    """Perturbed norm affines (so they are tested too), eval mode, optionally the weights rounded to fp16
    (the fp16 files hold rounded weights: the references are computed with exactly those), and the
    pipeline sampling with DDIM from the scheduler's config."""
    for m in (unet, vae, text_encoder):
        perturb_norms(m, g)
        m.eval()
        if round_fp16:
            with torch.no_grad():
                for p in m.parameters():
                    p.copy_(p.half().float())
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=DDIMScheduler.from_config(scheduler.config), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def record_references(pipe, g, latent, small, log=None):
    """The reference outputs (see the docstring) for fixed inputs drawn from `g`: a UNet call on
    latent×latent latents, the VAE and 3 DDIM steps on small×small latents."""
    import time
    tokenizer, text_encoder, unet, vae = pipe.tokenizer, pipe.text_encoder, pipe.unet, pipe.vae
    R = {}
    with torch.no_grad():
        ids = tokenizer([PROMPT, ""], padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        R["ids"] = ids.float()
        text = text_encoder(ids)[0]
        R["text"] = text
        x = torch.randn(2, 4, latent, latent, generator=g)
        t = torch.tensor([901, 37])
        rec = RecordingProcessor()
        original = dict(unet.attn_processors)
        unet.set_attn_processor({k: (rec if k == CAPTURED + ".processor" else v) for k, v in original.items()})
        t1 = time.time()
        R["unet.x"], R["unet.t"] = x, t.float()
        R["unet.out"] = unet(x, t, encoder_hidden_states=text).sample
        if log:
            log(f"UNet {latent}×{latent} batch 2 in {time.time() - t1:.1f} s")
        assert rec.probs is not None
        R["attn.probs"] = rec.probs.reshape(2, rec.probs.shape[0] // 2, rec.probs.shape[1], 77)
        unet.set_attn_processor(original)
        z = torch.randn(1, 4, small, small, generator=g)
        R["vae.z"], R["vae.decoded"] = z, vae.decode(z).sample
        side = small * pipe.vae_scale_factor
        img = torch.rand(1, 3, side, side, generator=g) * 2 - 1
        R["vae.x"], R["vae.mean"] = img, vae.encode(img).latent_dist.mean
        latents = torch.randn(1, 4, small, small, generator=g)
        R["ddim.latents"] = latents
        for key, kind in [("ddim.out", "latent"), ("ddim.image", "pt")]:
            R[key] = pipe(PROMPT, num_inference_steps=3, guidance_scale=7.5, latents=latents.clone(), height=side, width=side,
                          output_type=kind).images
    return R, ids


def save_folder(pipe, out, scheduler, tok_dir, fp16):
    """The pipeline as a diffusers folder, with the scheduler as shipped (SD 1.5: PNDM) and the tokenizer
    as the plain vocab.json/merges.txt folder."""
    shutil.rmtree(out, ignore_errors=True)
    if fp16:
        pipe.to(torch.float16)
        pipe.save_pretrained(out, variant="fp16", safe_serialization=True)
    else:
        pipe.save_pretrained(out, safe_serialization=True)
    scheduler.save_pretrained(os.path.join(out, "scheduler"))
    index_path = os.path.join(out, "model_index.json")
    index = json.load(open(index_path))
    index["scheduler"] = ["diffusers", type(scheduler).__name__]
    json.dump(index, open(index_path, "w"), indent=2)
    shutil.rmtree(os.path.join(out, "tokenizer"))
    shutil.copytree(tok_dir, os.path.join(out, "tokenizer"))


def build(name, sd2):
    g = torch.Generator().manual_seed(7 if sd2 else 3)
    torch.manual_seed(11 if sd2 else 5)
    tok_dir = os.path.join("/tmp", f"l2s-{name}-tokenizer")
    write_folder(tok_dir, MERGES, pad="!" if sd2 else "<|endoftext|>")
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, norm_num_groups=2, attention_head_dim=[2, 4] if sd2 else 2,
        use_linear_projection=sd2, upcast_attention=sd2)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        block_out_channels=(8, 16), layers_per_block=1, latent_channels=4, norm_num_groups=2, sample_size=16)
    text_config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=77, hidden_act="gelu" if sd2 else "quick_gelu", layer_norm_eps=1e-5,
        bos_token_id=0, eos_token_id=2, pad_token_id=1, projection_dim=32)
    text_encoder = CLIPTextModel(text_config)
    sched_args = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                      steps_offset=1, clip_sample=False, set_alpha_to_one=False)
    if sd2:
        scheduler = DDIMScheduler(prediction_type="v_prediction", timestep_spacing="leading", **sched_args)
    else:
        scheduler = PNDMScheduler(skip_prk_steps=True, **{k: v for k, v in sched_args.items() if k != "clip_sample"})
    pipe = make_pipeline(unet, vae, text_encoder, tokenizer, scheduler, g, round_fp16=sd2)
    R, ids = record_references(pipe, g, latent=8, small=8)
    out = os.path.join(FIX, name)
    save_folder(pipe, out, scheduler, tok_dir, fp16=sd2)
    assert CLIPTokenizer.from_pretrained(os.path.join(out, "tokenizer"))([PROMPT, ""], padding="max_length", max_length=77).input_ids == ids.tolist()
    suffix = ".fp16.safetensors" if sd2 else ".safetensors"
    if sd2:  # legacy VAE attention names, 1×1-conv-shaped
        path = os.path.join(out, "vae", "diffusion_pytorch_model" + suffix)
        sd = load_file(path)
        for new, old in [("to_q", "query"), ("to_k", "key"), ("to_v", "value"), ("to_out.0", "proj_attn")]:
            for kind in ("weight", "bias"):
                for part in ("encoder", "decoder"):
                    t_ = sd.pop(f"{part}.mid_block.attentions.0.{new}.{kind}")
                    sd[f"{part}.mid_block.attentions.0.{old}.{kind}"] = t_[:, :, None, None].contiguous() if kind == "weight" else t_
        save_file(sd, path, metadata={"format": "pt"})
    else:  # as SD 1.x ships it (transformers < 5): keys under text_model., plus the I64 position_ids buffer
        path = os.path.join(out, "text_encoder", "model" + suffix)
        sd = {k if k.startswith("text_model.") else "text_model." + k: v for k, v in load_file(path).items()}
        sd["text_model.embeddings.position_ids"] = torch.arange(77, dtype=torch.int64)[None]
        save_file(sd, path, metadata={"format": "pt"})
    ref = os.path.join(FIX, f"{name}-reference.safetensors")
    save_file({k: v.float().contiguous() for k, v in R.items()}, ref,
              metadata={"script": "Scripts/make_sd_fixtures.py", "prompt": PROMPT, "captured": CAPTURED,
                        "torch": torch.__version__, "diffusers": __import__("diffusers").__version__})
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(out) for f in fs)
    print(f"{name}: folder {size // 1024} KB, reference {os.path.getsize(ref) // 1024} KB; "
          f"unet.out max {R['unet.out'].abs().max():.3g}, decoded max {R['vae.decoded'].abs().max():.3g}, ids {ids[0, :13].tolist()}")




def structure():
    """Key → shape listings of SD 1.5- and SD 2-shaped models at reduced widths (full depth: 4 UNet blocks
    of 2 layers, 4 VAE blocks, 12 CLIP layers), with their configs, plus the full-size parameter counts
    (meta device, nothing allocated). Written to Fixtures/sd-structure.json."""
    out = {}
    for name, sd2 in [("sd15", False), ("sd2", True)]:
        unet_cfg = dict(block_out_channels=[32, 64, 128, 128], cross_attention_dim=48, norm_num_groups=32,
                        attention_head_dim=[2, 4, 8, 8] if sd2 else 8, use_linear_projection=sd2)
        vae_cfg = dict(block_out_channels=[32, 32, 64, 64], norm_num_groups=32, layers_per_block=2,
                       down_block_types=["DownEncoderBlock2D"] * 4, up_block_types=["UpDecoderBlock2D"] * 4)
        text_cfg = dict(vocab_size=100, hidden_size=48, intermediate_size=96, num_attention_heads=4,
                        num_hidden_layers=23 if sd2 else 12, max_position_embeddings=77,
                        hidden_act="gelu" if sd2 else "quick_gelu")
        with torch.device("meta"):
            unet = UNet2DConditionModel(**unet_cfg)
            vae = AutoencoderKL(**vae_cfg)
            text = CLIPTextModel(CLIPTextConfig(**text_cfg))
        listing = lambda m: [[k, list(v.shape)] for k, v in m.state_dict().items()]
        out[name] = {"unet_config": unet_cfg, "vae_config": vae_cfg, "text_config": text_cfg,
                     "unet": listing(unet), "vae": listing(vae), "text_encoder": listing(text)}
    # full-size parameter counts for the record (SD 1.5 and SD 2 configs)
    counts = {}
    for name, cfg, heads, ctx, lin, layers, width in [("sd15", {}, 8, 768, False, 12, 768), ("sd2", {}, [5, 10, 20, 20], 1024, True, 23, 1024)]:
        with torch.device("meta"):
            u = UNet2DConditionModel(attention_head_dim=heads, cross_attention_dim=ctx, use_linear_projection=lin)
            v = AutoencoderKL(block_out_channels=[128, 256, 512, 512], layers_per_block=2, down_block_types=["DownEncoderBlock2D"] * 4,
                              up_block_types=["UpDecoderBlock2D"] * 4)
            t = CLIPTextModel(CLIPTextConfig(hidden_size=width, intermediate_size=width * 4, num_attention_heads=width // 64,
                                             num_hidden_layers=layers, hidden_act="gelu" if name == "sd2" else "quick_gelu"))
        counts[name] = {k: sum(p.numel() for p in m.parameters()) for k, m in [("unet", u), ("vae", v), ("text_encoder", t)]}
    out["full_size_parameter_counts"] = counts
    path = os.path.join(FIX, "sd-structure.json")
    with open(path, "w") as f:
        json.dump(out, f, separators=(",", ":"))
    print(f"structure: {os.path.getsize(path) // 1024} KB; full-size counts {counts}")


def dpm_references():
    """DPM-Solver++(2M) and Euler (diffusers' DPMSolverMultistepScheduler / EulerDiscreteScheduler defaults, from
    the folder's scheduler config) on the committed tiny folders, from the DDIM references' start latents: 4 and 16 steps, CFG 7.5.
    Writes Fixtures/<name>-dpm-reference.safetensors (ids of steps, final latents)."""
    from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler
    from safetensors.torch import load_file as load
    for name, sd2 in [("tiny-sd", False), ("tiny-sd2", True)]:
        folder = os.path.join(FIX, name)
        # the latents are compared, so the VAE only gives the scale factor (tiny-sd2's legacy 1×1-conv-shaped VAE
        # attention weights do not load in diffusers' from_pretrained)
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(folder, subfolder="vae"))
        pipe = StableDiffusionPipeline.from_pretrained(folder, variant="fp16" if sd2 else None, torch_dtype=torch.float32,
                                                       vae=vae, safety_checker=None, requires_safety_checker=False)
        pipe.scheduler = DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)
        pipe.set_progress_bar_config(disable=True)
        latents = load(os.path.join(FIX, f"{name}-reference.safetensors"))["ddim.latents"]
        R = {}
        with torch.no_grad():
            for n in (4, 16):
                R[f"dpm{n}.out"] = pipe(PROMPT, num_inference_steps=n, guidance_scale=7.5, latents=latents.clone(),
                                        output_type="latent").images
                R[f"dpm{n}.timesteps"] = pipe.scheduler.timesteps.float()
        pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
        with torch.no_grad():
            for n in (4, 16):
                R[f"euler{n}.out"] = pipe(PROMPT, num_inference_steps=n, guidance_scale=7.5, latents=latents.clone(),
                                          output_type="latent").images
                R[f"euler{n}.timesteps"] = pipe.scheduler.timesteps.float()
        save_file({k: v.float().contiguous() for k, v in R.items()}, os.path.join(FIX, f"{name}-dpm-reference.safetensors"),
                  metadata={"script": "Scripts/make_sd_fixtures.py --dpm", "prompt": PROMPT,
                            "scheduler": json.dumps(dict(pipe.scheduler.config))})
        print(f"{name}: dpm timesteps 4 steps {R['dpm4.timesteps'].tolist()}, out max {R['dpm16.out'].abs().max():.3g}")


def build_full(out, which):
    """The real SD 1.5 / SD 2.1-base configs with random weights and their reference outputs (see the docstring)."""
    import time
    sd2 = which == "sd21"
    torch.manual_seed(23 if sd2 else 17)
    g = torch.Generator().manual_seed(29 if sd2 else 19)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    t0 = time.time()
    tok_dir = os.path.join("/tmp", f"l2s-full-{which}-tokenizer")
    write_folder(tok_dir, pad="!" if sd2 else "<|endoftext|>")
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=1024 if sd2 else 768,
                                attention_head_dim=[5, 10, 20, 20] if sd2 else 8, use_linear_projection=sd2)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(128, 256, 512, 512),
                        layers_per_block=2, latent_channels=4, norm_num_groups=32, sample_size=512)
    width = 1024 if sd2 else 768
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=width, intermediate_size=4 * width, num_attention_heads=width // 64,
        num_hidden_layers=23 if sd2 else 12, max_position_embeddings=77, hidden_act="gelu" if sd2 else "quick_gelu",
        layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=49407, pad_token_id=0 if sd2 else 49407,
        projection_dim=512 if sd2 else 768))
    scheduler = PNDMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              steps_offset=1, set_alpha_to_one=False, skip_prk_steps=True)
    pipe = make_pipeline(unet, vae, text_encoder, tokenizer, scheduler, g, round_fp16=True)
    print(f"{which}: built in {time.time() - t0:.0f} s; parameters: unet {sum(p_.numel() for p_ in unet.parameters()):,}, "
          f"text {sum(p_.numel() for p_ in text_encoder.parameters()):,}, vae {sum(p_.numel() for p_ in vae.parameters()):,}", flush=True)
    R, ids = record_references(pipe, g, latent=64, small=32, log=lambda m: print(f"{which}: {m}", flush=True))
    save_folder(pipe, os.path.join(out, "model"), scheduler, tok_dir, fp16=True)
    save_file({k: v.float().contiguous() for k, v in R.items()}, os.path.join(out, "reference.safetensors"),
              metadata={"script": "Scripts/make_sd_fixtures.py --full", "config": which, "prompt": PROMPT, "captured": CAPTURED,
                        "torch": torch.__version__, "diffusers": __import__("diffusers").__version__})
    print(f"{which}: wrote {out} in {time.time() - t0:.0f} s; ids {ids[0, :12].tolist()}; unet.out max {R['unet.out'].abs().max():.3g}")


if __name__ == "__main__":
    if "--dpm" in sys.argv:
        dpm_references()
        sys.exit(0)
    if "--full" in sys.argv:
        i = sys.argv.index("--full")
        build_full(sys.argv[i + 1], sys.argv[i + 2] if len(sys.argv) > i + 2 else "sd15")
        sys.exit(0)
    if "--structure" not in sys.argv:
        build("tiny-sd", sd2=False)
        build("tiny-sd2", sd2=True)
    structure()
