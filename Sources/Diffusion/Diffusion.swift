// Diffusion: the models and the sampling loop.
//
// Owns: UNet2DConditionModel and its blocks, the CLIP-style text encoder and CLIP BPE tokenizer, the
// AutoencoderKL (SD VAE), reading diffusers Stable Diffusion 1.x/2.x folders (ModelFolder,
// StableDiffusionModel), the schedulers behind `DiffusionScheduler` (DDIM, DPM-Solver++ 2M, Euler),
// the cross-attention capture hook, the sampler (settings value in, per-step events out) with the
// one denoising loop (`Sampler.denoise`), and DDIM inversion with its reconstruction (Inversion.swift).
// Module property names are the diffusers / transformers state-dict keys, so checkpoints load
// without renaming. Must not import: Steering, ToyWorld, Workbench, the terminal. Nothing here
// knows about spatial relations; steering plugs in through `StepHook`.
