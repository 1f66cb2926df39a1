// Tensors: the bottom layer of LearnToSteer.
//
// Owns: contiguous Float32 storage, shapes and broadcasting, the kernels (over OpenBLAS's cblas and
// plain pointer loops), reverse-mode autodiff on a dynamic tape, modules with named parameter trees,
// optimisers, the seeded RNG and safetensors I/O.
// Must not import: anything of Diffusion, Steering, ToyWorld, Workbench or the terminal.
//
// Conventions: layouts follow PyTorch (NCHW images, Linear weights [out, in]); every op returns a new
// contiguous tensor (reshape shares storage); each op's forward kernel and its backward sit together
// in one file under Ops/, one file per family.

// The safetensors header parser and the text-file line splitter live in Formats (built with Swift's
// checks on); re-exported so every layer that imports Tensors sees them.
@_exported import Formats
