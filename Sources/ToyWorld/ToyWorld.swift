// ToyWorld: the synthetic scene world the embedded toy diffusion model is trained on.
//
// Owns: the object catalogue (8 coloured shapes), scene sampling and anti-aliased rendering,
// captions (relation / "and" / single / empty, plus positive–negative pairs for dual inversion),
// the word-level tokenizer over the world's vocabulary, a colour-and-shape detector with the GenEval
// position rule, and PNG I/O through libpng's simplified API.
// Must not import: Steering, Workbench or anything that touches the terminal. Relations here are a
// small local enum (`ToyRelation`); Steering maps them onto its own relation set.
//
// Files: Catalogue (classes, colours, shapes) · SceneRenderer (Box, Scene, SceneSampler, shape
// geometry, SceneRenderer) · Captioner · WordTokenizer · Detector (detector + GenEval rule) · PNG.
