// Steering: Learn-to-Steer on a diffusion model.
//
// Owns: cross-attention maps of a prompt's objects (AttentionMaps), the relation classifier and its
// training (RelationClassifier, ClassifierTrainer), the refinement policy (RefinementLoop) and its
// UNet evaluator (Steerer), the one settings value (GenerationSettings), steered generation
// (SteeredGenerator: prompt → relation graph → steered sampling, with live edits at step
// boundaries), the sidecar format (Sidecar), and the classifier's datasets (Dataset, Annotations).
// Builds on Relations (the prompt's graph) and Diffusion (the model, sampler and inversion).
// Must not import: ToyWorld, Workbench or anything that touches the terminal.
