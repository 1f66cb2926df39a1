// ToyWorld: the synthetic scene world the embedded toy diffusion model is trained on.
//
// Owns: the object catalogue (8 coloured shapes), scene sampling and anti-aliased rendering,
// captions (relation / "and" / single / empty, plus positive–negative pairs for dual inversion),
// the word-level tokenizer over the world's vocabulary, a colour-and-shape detector with the GenEval
// position rule.
// Must not import: Steering, Workbench or anything that touches the terminal. Its relations are
// Relations' `SpatialRelation`, the same four the prompts and the classifier use.
//
// Files: Catalogue (classes, colours, shapes) · SceneRenderer (Box, Scene, SceneSampler, shape
// geometry, SceneRenderer) · Captioner · WordTokenizer · Detector (detector + GenEval rule) · DetectorReading. (PNG I/O is Imaging's.)
