// Element-wise kernels in C for whole-tensor calls, compiled three times (AVX-512, AVX2 + FMA,
// baseline) and chosen once at run time from the CPU's features: the Swift kernels are built for the
// baseline (SSE2), where an 8-lane SIMD value is two registers and there is no FMA, and Swift has no
// per-function target attribute. Same formulas as the Swift versions in Sources/Tensors/Ops (Cephes'
// expf polynomial after reduction by ln 2; Abramowitz & Stegun 7.1.26 erf). The attention softmax's
// exp stays inlined Swift: it is called per tile row, where a call here cost more than it saved.
#ifndef L2S_CKERNELS_H
#define L2S_CKERNELS_H

/// y[i] = x[i] · sigmoid(x[i]).
void l2s_silu(const float *x, float *y, long n);
/// gx[i] = gy[i] · d/dx (x · sigmoid(x)).
void l2s_silu_backward(const float *gy, const float *x, float *gx, long n);
/// Per row of h [rows, 2·width] = (a, g): out [rows, width] = a · gelu(g), exact GELU.
void l2s_geglu(const float *h, float *out, long rows, long width);
/// The gradient of l2s_geglu: dh [rows, 2·width] from gy [rows, width].
void l2s_geglu_backward(const float *h, const float *gy, float *dh, long rows, long width);
/// Little-endian binary16 at src (any alignment) → float32 at dst; returns the index of the first
/// NaN/±Inf value, or -1 (all n values are converted either way).
long l2s_f16_to_f32(const void *src, float *dst, long n);
/// l2s_f16_to_f32's portable path, whatever the CPU has (so tests cover it on every machine).
long l2s_f16_to_f32_portable(const void *src, float *dst, long n);
/// l2s_f16_to_f32's AVX2 + F16C path, whatever the table chose (tests); −2 when the CPU lacks it.
long l2s_f16_to_f32_avx2(const void *src, float *dst, long n);
/// The same for little-endian bfloat16.
long l2s_bf16_to_f32(const void *src, float *dst, long n);
/// The same for little-endian float32 (a copy).
long l2s_f32_copy(const void *src, float *dst, long n);
/// The index of the first NaN/±Inf of x, or -1.
long l2s_first_nonfinite(const float *x, long n);
/// s[i·lds + j] = alpha · Σ_t q[i·ldq + t] · k[j·ldk + t] for i < m, j < n (attention scores, q·kᵀ)
/// when the CPU has AVX-512 and 1 ≤ d ≤ 128: returns 1. Otherwise does nothing and returns 0 (the
/// caller uses sgemm).
int l2s_scores_nt(const float *q, long ldq, const float *k, long ldk, float *s, long lds, long m, long n, long d,
                  float alpha);
/// Softmax over each row of x [rows, n] into y (y may be x) when the CPU has AVX-512: returns 1;
/// otherwise does nothing and returns 0 (the caller's own loop runs).
int l2s_softmax_rows(const float *x, float *y, long rows, long n);
/// One online-softmax step of flash attention over a score tile s [m, n] (AVX-512: returns 1, else
/// 0 and nothing is done): per row, exp(row − new max) in place, run_max/run_sum updated, and
/// alpha[r] = exp(old max − new max), the factor the caller rescales its output row by.
int l2s_online_softmax_tile(float *s, long m, long n, float *run_max, float *run_sum, float *alpha);
/// p[r][j] = exp(p[r][j] − shift[r]) over a tile p [m, n] (AVX-512: returns 1, else 0).
int l2s_exp_rows_shifted(float *p, long m, long n, const float *shift);
/// Group norm forward over rows [lo, hi) of (image, group) of x [rows, cpg·spatial] (AVX-512: returns
/// 1; else 0, nothing done): out, and each row's mean and 1/√(var + eps), as groupNorm in Norm.swift.
int l2s_group_norm_forward(const float *x, float *out, float *mean, float *rstd, long lo, long hi, long groups,
                           long cpg, long spatial, const float *weight, const float *bias, float eps);
/// Its backward over rows [lo, hi): gx (if non-NULL) and the per (image, channel) Σ dy and Σ dy·x̂ (if
/// non-NULL, [n, groups·cpg]); weight may be NULL (γ = 1). 1, or 0 without AVX-512.
int l2s_group_norm_backward(const float *x, const float *gy, float *gx, const float *mean, const float *rstd,
                            long lo, long hi, long groups, long cpg, long spatial, const float *weight, float *sum_dy,
                            float *sum_dy_xhat);
/// The instruction set the kernels run: "avx512", "avx2" or "baseline".
const char *l2s_kernel_isa(void);

/// One conv2d call's shapes for the oneDNN entry points (NCHW input [n, cin, h, w], OIHW weights
/// [cout, cin, kh, kw], equal stride and zero padding on both axes) and the threads oneDNN may use.
typedef struct {
    long n, cin, h, w, cout, kh, kw, stride, pad, threads;
} l2s_conv_shape;
/// y [n, cout, ho, wo] = conv(x, w) (+ bias when non-NULL) through oneDNN: returns 1; 0 when oneDNN
/// is absent, has no JIT implementation for the shape or fails (nothing is written; the caller runs
/// its own convolution). See onednn.c.
int l2s_dnnl_conv_forward(const l2s_conv_shape *s, const float *x, const float *w, const float *bias, float *y);
/// dx = the input gradient from dy (overwritten, not accumulated); 1 or 0 as above.
int l2s_dnnl_conv_backward_data(const l2s_conv_shape *s, const float *dy, const float *w, float *dx);
/// dw = the weight gradient from dy and x (overwritten); 1 or 0 as above.
int l2s_dnnl_conv_backward_weights(const l2s_conv_shape *s, const float *dy, const float *x, float *dw);
/// Whether oneDNN loaded (libdnnl.so.2, and not L2S_CONV=builtin).
int l2s_dnnl_available(void);
/// The algorithm oneDNN runs for `s` without bias (kind 0 forward, 1 backward data, 2 backward
/// weights; the primitive is built and cached if it was not): 0 none (declined), 1 direct, 2 Winograd.
int l2s_dnnl_conv_algorithm(const l2s_conv_shape *s, int kind);

#endif
