// Diffusion: the models and the sampling loop.
//
// Owns: UNet2DConditionModel and its blocks, the CLIP-style text encoder, schedulers (DDIM), the
// cross-attention capture hook, the sampler (settings value in, per-step events out) and DDIM
// inversion. Module property names are the diffusers / transformers state-dict keys, so checkpoints
// load without renaming. Must not import: Steering, ToyWorld, Workbench, the terminal. Nothing here
// knows about spatial relations; steering plugs in through `StepHook`.
