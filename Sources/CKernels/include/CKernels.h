// Element-wise kernels in C, compiled three times (AVX-512, AVX2 + FMA, baseline x86-64 / other
// architectures) and chosen once at run time from the CPU's features: the Swift kernels are built for
// the baseline (SSE2), where an 8-lane SIMD value is two registers and there is no FMA, and Swift has
// no per-function target attribute. Same formulas as the Swift versions in Sources/Tensors/Ops
// (Cephes' expf polynomial after reduction by ln 2; Abramowitz & Stegun 7.1.26 erf).
#ifndef L2S_CKERNELS_H
#define L2S_CKERNELS_H

/// y[i] = exp(x[i] + shift); x and y may alias.
void l2s_exp(const float *x, float *y, long n, float shift);
/// y[i] = x[i] · sigmoid(x[i]).
void l2s_silu(const float *x, float *y, long n);
/// gx[i] = gy[i] · d/dx (x · sigmoid(x)).
void l2s_silu_backward(const float *gy, const float *x, float *gx, long n);
/// Per row of h [rows, 2·width] = (a, g): out [rows, width] = a · gelu(g), exact GELU.
void l2s_geglu(const float *h, float *out, long rows, long width);
/// The gradient of l2s_geglu: dh [rows, 2·width] from gy [rows, width].
void l2s_geglu_backward(const float *h, const float *gy, float *dh, long rows, long width);
/// The instruction set the kernels run: "avx512", "avx2" or "baseline".
const char *l2s_kernel_isa(void);

#endif
