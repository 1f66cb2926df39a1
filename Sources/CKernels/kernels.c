#include "CKernels.h"
#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <pthread.h>
#include <stdint.h>
#include <string.h>

static inline __attribute__((always_inline)) float l2s_exp1(float v) {
    float x = v < -87.33654f ? -87.33654f : v;
    x = x > 88.0f ? 88.0f : x;
    const float magic = 12582912.0f;  /* 1.5·2²³: the add rounds x·log2(e) to an integer k */
    float shifted = x * 1.44269504088896341f + magic;
    float k = shifted - magic;
    float r = x - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float r2 = r * r;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r2 + r + 1.0f;
    int32_t ki;
    memcpy(&ki, &shifted, 4);
    int32_t bits = (ki - 0x4B400000 + 127) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    float e = p * scale;
    return v != v ? v : e;  /* NaN in, NaN out */
}

static inline __attribute__((always_inline)) float l2s_erf1(float v) {
    float a = v < 0 ? -v : v;
    float t = 1.0f / (1.0f + 0.3275911f * a);
    float p = 1.061405429f;
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    float y = 1.0f - p * t * l2s_exp1(-a * a);
    return v < 0 ? -y : y;
}

#define L2S_INV_SQRT2 0.7071067811865476f
#define L2S_INV_SQRT2PI 0.3989422804014327f

/* One body per kernel, instantiated per instruction set. */
#define L2S_DEFINE_KERNELS(SUFFIX, ATTR)                                                          \
    ATTR static void silu_##SUFFIX(const float *x, float *y, long n) {                          \
        for (long i = 0; i < n; i++) y[i] = x[i] / (1.0f + l2s_exp1(-x[i]));                    \
    }                                                                                           \
    ATTR static void silu_backward_##SUFFIX(const float *gy, const float *x, float *gx, long n) { \
        for (long i = 0; i < n; i++) {                                                          \
            float s = 1.0f / (1.0f + l2s_exp1(-x[i]));                                          \
            gx[i] = gy[i] * s * (1.0f + x[i] * (1.0f - s));                                     \
        }                                                                                       \
    }                                                                                           \
    ATTR static void geglu_##SUFFIX(const float *h, float *out, long rows, long width) {        \
        for (long row = 0; row < rows; row++) {                                                 \
            const float *a = h + row * 2 * width, *g = a + width;                               \
            float *o = out + row * width;                                                       \
            for (long i = 0; i < width; i++)                                                    \
                o[i] = a[i] * (0.5f * g[i] * (1.0f + l2s_erf1(g[i] * L2S_INV_SQRT2)));          \
        }                                                                                       \
    }                                                                                           \
    ATTR static void geglu_backward_##SUFFIX(const float *h, const float *gy, float *dh, long rows, \
                                             long width) {                                      \
        for (long row = 0; row < rows; row++) {                                                 \
            const float *a = h + row * 2 * width, *g = a + width, *dy = gy + row * width;       \
            float *da = dh + row * 2 * width, *dg = da + width;                                 \
            for (long i = 0; i < width; i++) {                                                  \
                float cdf = 0.5f * (1.0f + l2s_erf1(g[i] * L2S_INV_SQRT2));                     \
                da[i] = dy[i] * g[i] * cdf;                                                     \
                dg[i] = dy[i] * a[i] * (cdf + g[i] * L2S_INV_SQRT2PI * l2s_exp1(-0.5f * g[i] * g[i])); \
            }                                                                                   \
        }                                                                                       \
    }

L2S_DEFINE_KERNELS(baseline, )
#if defined(__x86_64__)
L2S_DEFINE_KERNELS(avx2, __attribute__((target("avx2,fma"))))
L2S_DEFINE_KERNELS(avx512, __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma"))))
#endif


/* Weight conversions. Each converts all n values and returns the index of the first non-finite one
   (NaN or ±Inf), or -1: the check reads the source while it is in cache, so a folder load makes one
   pass over its weights instead of three (convert, scan, copy). */

/* Loads that do not assume alignment (a safetensors tensor may start at any byte offset). */
static inline uint16_t l2s_load16(const uint16_t *p, long i) {
    uint16_t v;
    memcpy(&v, (const unsigned char *)p + 2 * i, 2);
    return v;
}
static inline uint32_t l2s_load32(const uint32_t *p, long i) {
    uint32_t v;
    memcpy(&v, (const unsigned char *)p + 4 * i, 4);
    return v;
}

static inline float l2s_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF, bits;
    if (exponent == 0x1F) {
        bits = sign | 0x7F800000 | (mantissa << 13);
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else { /* subnormal: normalise */
        int e = -1;
        do { e++; mantissa <<= 1; } while ((mantissa & 0x400) == 0);
        bits = sign | ((uint32_t)(112 - e) << 23) | ((mantissa & 0x3FF) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static long f16_to_f32_baseline(const uint16_t *src, float *dst, long n) {
    long bad = -1;
    for (long i = 0; i < n; i++) {
        uint16_t h = l2s_load16(src, i);
        if (bad < 0 && (h & 0x7C00) == 0x7C00) bad = i;
        dst[i] = l2s_half_to_float(h);
    }
    return bad;
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma,f16c"))) static long f16_to_f32_avx2(const uint16_t *src, float *dst, long n) {
    long bad = -1, i = 0;
    const __m128i exponent = _mm_set1_epi16(0x7C00);
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(src + i));
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
        if (bad < 0) {
            int m = _mm_movemask_epi8(_mm_cmpeq_epi16(_mm_and_si128(h, exponent), exponent));
            if (m) bad = i + __builtin_ctz((unsigned)m) / 2;
        }
    }
    long tail = f16_to_f32_baseline(src + i, dst + i, n - i);
    return bad >= 0 ? bad : (tail >= 0 ? i + tail : -1);
}

__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")))
static long f16_to_f32_avx512(const uint16_t *src, float *dst, long n) {
    long bad = -1, i = 0;
    const __m256i exponent = _mm256_set1_epi16(0x7C00);
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(src + i));
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(h));
        if (bad < 0) {
            __mmask16 m = _mm256_cmpeq_epi16_mask(_mm256_and_si256(h, exponent), exponent);
            if (m) bad = i + __builtin_ctz((unsigned)m);
        }
    }
    long tail = f16_to_f32_baseline(src + i, dst + i, n - i);
    return bad >= 0 ? bad : (tail >= 0 ? i + tail : -1);
}
#endif

/* bfloat16 is the top half of a float32: widen, then check the float's exponent. */
#define L2S_DEFINE_CHECKS(SUFFIX, ATTR)                                                           \
    ATTR static long bf16_to_f32_##SUFFIX(const uint16_t *src, float *dst, long n) {            \
        uint32_t any = 0;                                                                       \
        uint32_t *out = (uint32_t *)dst;                                                        \
        for (long i = 0; i < n; i++) {                                                          \
            uint32_t bits = (uint32_t)l2s_load16(src, i) << 16;                                             \
            out[i] = bits;                                                                      \
            any |= (uint32_t)((bits & 0x7F800000u) == 0x7F800000u);                             \
        }                                                                                       \
        if (!any) return -1;                                                                    \
        for (long i = 0; i < n; i++)                                                            \
            if ((l2s_load16(src, i) & 0x7F80) == 0x7F80) return i;                                          \
        return -1;                                                                              \
    }                                                                                           \
    ATTR static long f32_copy_##SUFFIX(const uint32_t *src, float *dst, long n) {               \
        uint32_t any = 0;                                                                       \
        uint32_t *out = (uint32_t *)dst;                                                        \
        for (long i = 0; i < n; i++) {                                                          \
            uint32_t bits = l2s_load32(src, i);                                                             \
            out[i] = bits;                                                                      \
            any |= (uint32_t)((bits & 0x7F800000u) == 0x7F800000u);                             \
        }                                                                                       \
        if (!any) return -1;                                                                    \
        for (long i = 0; i < n; i++)                                                            \
            if ((l2s_load32(src, i) & 0x7F800000u) == 0x7F800000u) return i;                    \
        return -1;                                                                              \
    }                                                                                           \
    ATTR static long first_nonfinite_##SUFFIX(const float *x, long n) {                         \
        const uint32_t *bits = (const uint32_t *)x;                                             \
        uint32_t any = 0;                                                                       \
        for (long i = 0; i < n; i++) any |= (uint32_t)((bits[i] & 0x7F800000u) == 0x7F800000u); \
        if (!any) return -1;                                                                    \
        for (long i = 0; i < n; i++)                                                            \
            if ((bits[i] & 0x7F800000u) == 0x7F800000u) return i;                               \
        return -1;                                                                              \
    }

L2S_DEFINE_CHECKS(baseline, )
#if defined(__x86_64__)
L2S_DEFINE_CHECKS(avx2, __attribute__((target("avx2,fma"))))
L2S_DEFINE_CHECKS(avx512, __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma"))))
#endif

typedef struct {
    void (*silu)(const float *, float *, long);
    void (*silu_backward)(const float *, const float *, float *, long);
    void (*geglu)(const float *, float *, long, long);
    void (*geglu_backward)(const float *, const float *, float *, long, long);
    long (*f16_to_f32)(const uint16_t *, float *, long);
    long (*bf16_to_f32)(const uint16_t *, float *, long);
    long (*f32_copy)(const uint32_t *, float *, long);
    long (*first_nonfinite)(const float *, long);
    int is_avx512;
    const char *isa;
} l2s_kernel_table;

#define L2S_TABLE(SUFFIX) \
    { silu_##SUFFIX, silu_backward_##SUFFIX, geglu_##SUFFIX, geglu_backward_##SUFFIX, f16_to_f32_##SUFFIX, \
      bf16_to_f32_##SUFFIX, f32_copy_##SUFFIX, first_nonfinite_##SUFFIX, L2S_IS_AVX512_##SUFFIX, #SUFFIX }

#define L2S_IS_AVX512_baseline 0
#define L2S_IS_AVX512_avx2 0
#define L2S_IS_AVX512_avx512 1

#if defined(__x86_64__)
/* What the "avx2" table needs: AVX2, FMA and F16C. */
static int l2s_cpu_has_avx2_set(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
#endif

static l2s_kernel_table l2s_choose(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) {
        l2s_kernel_table t = L2S_TABLE(avx512);
        return t;
    }
    if (l2s_cpu_has_avx2_set()) {
        l2s_kernel_table t = L2S_TABLE(avx2);
        return t;
    }
#endif
    l2s_kernel_table t = L2S_TABLE(baseline);
    return t;
}

static l2s_kernel_table l2s_chosen;
static pthread_once_t l2s_chosen_once = PTHREAD_ONCE_INIT;
static void l2s_init_table(void) { l2s_chosen = l2s_choose(); }

/* Chosen once, on first use. */
static const l2s_kernel_table *l2s_table(void) {
    pthread_once(&l2s_chosen_once, l2s_init_table);
    return &l2s_chosen;
}

void l2s_silu(const float *x, float *y, long n) { l2s_table()->silu(x, y, n); }
void l2s_silu_backward(const float *gy, const float *x, float *gx, long n) { l2s_table()->silu_backward(gy, x, gx, n); }
void l2s_geglu(const float *h, float *out, long rows, long width) { l2s_table()->geglu(h, out, rows, width); }
void l2s_geglu_backward(const float *h, const float *gy, float *dh, long rows, long width) {
    l2s_table()->geglu_backward(h, gy, dh, rows, width);
}
long l2s_f16_to_f32(const void *src, float *dst, long n) { return l2s_table()->f16_to_f32((const uint16_t *)src, dst, n); }
long l2s_f16_to_f32_portable(const void *src, float *dst, long n) { return f16_to_f32_baseline((const uint16_t *)src, dst, n); }
long l2s_f16_to_f32_avx2(const void *src, float *dst, long n) {
#if defined(__x86_64__)
    if (l2s_cpu_has_avx2_set()) return f16_to_f32_avx2((const uint16_t *)src, dst, n);
#endif
    (void)src; (void)dst; (void)n;
    return -2;
}
long l2s_bf16_to_f32(const void *src, float *dst, long n) { return l2s_table()->bf16_to_f32((const uint16_t *)src, dst, n); }
long l2s_f32_copy(const void *src, float *dst, long n) { return l2s_table()->f32_copy((const uint32_t *)src, dst, n); }
long l2s_first_nonfinite(const float *x, long n) { return l2s_table()->first_nonfinite(x, n); }
const char *l2s_kernel_isa(void) { return l2s_table()->isa; }

/* Attention scores S = alpha · Q · Kᵀ for a small head dimension (d ≤ L2S_SCORES_MAX_D): OpenBLAS runs
   this thin product (inner dimension 32 in the embedded model) at a quarter of its GEMM speed. Keys
   are transposed 32 at a time into a d × 32 panel; each 4-row × 32-key tile keeps 8 accumulators in
   registers over the d products. AVX-512 only (elsewhere the caller keeps sgemm). */
#define L2S_SCORES_MAX_D 128
#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
static void scores_nt_avx512(const float *q, long ldq, const float *k, long ldk, float *s, long lds, long m, long n,
                             long d, float alpha) {
    float panel[L2S_SCORES_MAX_D * 32] __attribute__((aligned(64)));
    const __m512 scale = _mm512_set1_ps(alpha);
    for (long j0 = 0; j0 < n; j0 += 32) {
        long nb = n - j0 < 32 ? n - j0 : 32;
        for (long jj = 0; jj < 32; jj++) {
            if (jj < nb) {
                const float *row = k + (j0 + jj) * ldk;
                for (long t = 0; t < d; t++) panel[t * 32 + jj] = row[t];
            } else {
                for (long t = 0; t < d; t++) panel[t * 32 + jj] = 0;
            }
        }
        __mmask16 m0 = nb >= 16 ? 0xFFFF : (__mmask16)((1u << nb) - 1);
        __mmask16 m1 = nb >= 32 ? 0xFFFF : (nb <= 16 ? 0 : (__mmask16)((1u << (nb - 16)) - 1));
        long i = 0;
        for (; i + 4 <= m; i += 4) {
            __m512 a00 = _mm512_setzero_ps(), a01 = _mm512_setzero_ps(), a10 = _mm512_setzero_ps(), a11 = _mm512_setzero_ps();
            __m512 a20 = _mm512_setzero_ps(), a21 = _mm512_setzero_ps(), a30 = _mm512_setzero_ps(), a31 = _mm512_setzero_ps();
            const float *q0 = q + i * ldq, *q1 = q0 + ldq, *q2 = q1 + ldq, *q3 = q2 + ldq;
            for (long t = 0; t < d; t++) {
                __m512 b0 = _mm512_load_ps(panel + t * 32), b1 = _mm512_load_ps(panel + t * 32 + 16);
                __m512 x0 = _mm512_set1_ps(q0[t]), x1 = _mm512_set1_ps(q1[t]);
                __m512 x2 = _mm512_set1_ps(q2[t]), x3 = _mm512_set1_ps(q3[t]);
                a00 = _mm512_fmadd_ps(x0, b0, a00); a01 = _mm512_fmadd_ps(x0, b1, a01);
                a10 = _mm512_fmadd_ps(x1, b0, a10); a11 = _mm512_fmadd_ps(x1, b1, a11);
                a20 = _mm512_fmadd_ps(x2, b0, a20); a21 = _mm512_fmadd_ps(x2, b1, a21);
                a30 = _mm512_fmadd_ps(x3, b0, a30); a31 = _mm512_fmadd_ps(x3, b1, a31);
            }
            float *s0 = s + i * lds + j0;
            _mm512_mask_storeu_ps(s0, m0, _mm512_mul_ps(a00, scale));
            _mm512_mask_storeu_ps(s0 + 16, m1, _mm512_mul_ps(a01, scale));
            _mm512_mask_storeu_ps(s0 + lds, m0, _mm512_mul_ps(a10, scale));
            _mm512_mask_storeu_ps(s0 + lds + 16, m1, _mm512_mul_ps(a11, scale));
            _mm512_mask_storeu_ps(s0 + 2 * lds, m0, _mm512_mul_ps(a20, scale));
            _mm512_mask_storeu_ps(s0 + 2 * lds + 16, m1, _mm512_mul_ps(a21, scale));
            _mm512_mask_storeu_ps(s0 + 3 * lds, m0, _mm512_mul_ps(a30, scale));
            _mm512_mask_storeu_ps(s0 + 3 * lds + 16, m1, _mm512_mul_ps(a31, scale));
        }
        for (; i < m; i++) {
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
            const float *q0 = q + i * ldq;
            for (long t = 0; t < d; t++) {
                __m512 x0 = _mm512_set1_ps(q0[t]);
                a0 = _mm512_fmadd_ps(x0, _mm512_load_ps(panel + t * 32), a0);
                a1 = _mm512_fmadd_ps(x0, _mm512_load_ps(panel + t * 32 + 16), a1);
            }
            _mm512_mask_storeu_ps(s + i * lds + j0, m0, _mm512_mul_ps(a0, scale));
            _mm512_mask_storeu_ps(s + i * lds + j0 + 16, m1, _mm512_mul_ps(a1, scale));
        }
    }
}
#endif

/* The AVX-512 softmax pieces: l2s_exp16 is l2s_exp1 over 16 lanes (Cephes' polynomial; NaN in, NaN
   out); l2s_row_max16 and l2s_exp_shift_sum16 are the two passes every softmax here makes over a row. */
#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
static inline __m512 l2s_exp16(__m512 v) {
    __m512 x = _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(-87.33654f)), _mm512_set1_ps(88.0f));
    const __m512 magic = _mm512_set1_ps(12582912.0f);
    __m512 shifted = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), magic);
    __m512 k = _mm512_sub_ps(shifted, magic);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 r2 = _mm512_mul_ps(r, r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, r2, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_sub_epi32(_mm512_castps_si512(shifted), _mm512_set1_epi32(0x4B400000)), _mm512_set1_epi32(127)), 23);
    __m512 e = _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
    __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    return _mm512_mask_mov_ps(e, nan, v);
}

/* The largest of p[0..n) (−∞ for n = 0). */
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
static inline float l2s_row_max16(const float *p, long n) {
    __m512 mx = _mm512_set1_ps(-__builtin_inff());
    long i = 0;
    for (; i + 16 <= n; i += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(p + i));
    float m = _mm512_reduce_max_ps(mx);
    for (; i < n; i++) m = p[i] > m ? p[i] : m;
    return m;
}

/* q[i] = exp(p[i] + shift) for i < n (q may be p), with a masked tail; returns the sum of the q[i]. */
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
static inline float l2s_exp_shift_sum16(const float *p, float *q, long n, float shift) {
    __m512 sh = _mm512_set1_ps(shift), acc = _mm512_setzero_ps();
    long i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = l2s_exp16(_mm512_add_ps(_mm512_loadu_ps(p + i), sh));
        _mm512_storeu_ps(q + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        __mmask16 mk = (__mmask16)((1u << (n - i)) - 1);
        __m512 e = _mm512_maskz_mov_ps(mk, l2s_exp16(_mm512_add_ps(_mm512_maskz_loadu_ps(mk, p + i), sh)));
        _mm512_mask_storeu_ps(q + i, mk, e);
        acc = _mm512_add_ps(acc, e);
    }
    return _mm512_reduce_add_ps(acc);
}

/* Softmax over each row of x [rows, n] into y (may be x). A row whose max is −∞ is shifted by 0, as
   in the Swift version. */
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
static void softmax_rows_avx512(const float *x, float *y, long rows, long n) {
    for (long r = 0; r < rows; r++) {
        const float *p = x + r * n;
        float *q = y + r * n;
        float m = l2s_row_max16(p, n);
        if (m == -__builtin_inff()) m = 0;
        float s = l2s_exp_shift_sum16(p, q, n, -m);
        __m512 inv = _mm512_set1_ps(1.0f / s);
        long i = 0;
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(q + i, _mm512_mul_ps(_mm512_loadu_ps(q + i), inv));
        for (; i < n; i++) q[i] *= 1.0f / s;
    }
}
#endif


/* The AVX-512-only kernels: run CALL and return 1 where the CPU has AVX-512, else fall through
   (the caller's portable code runs). */
#if defined(__x86_64__)
#define L2S_AVX512_OR_DECLINE(CALL)           \
    do {                                      \
        if (l2s_table()->is_avx512) {         \
            CALL;                             \
            return 1;                         \
        }                                     \
    } while (0)
#else
#define L2S_AVX512_OR_DECLINE(CALL) do { } while (0)
#endif

/* The flash attention's per-tile softmax work, one call per score tile of m rows × n keys (AVX-512;
   elsewhere the caller's Swift loop runs). Online step: for each row, new max M' = max(M, max(row));
   row ← exp(row − M'); alpha = exp(M − M') (0 when M was −∞); sum ← sum·alpha + Σ row; M ← M'. A row
   that is −∞ so far is zeroed with alpha 1, as in the Swift version. */
#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
static void online_softmax_tile_avx512(float *s, long m, long n, float *run_max, float *run_sum, float *alpha) {
    for (long r = 0; r < m; r++) {
        float *p = s + r * n;
        float tile_max = l2s_row_max16(p, n);
        float new_max = run_max[r] > tile_max ? run_max[r] : tile_max;
        if (new_max == -__builtin_inff()) {
            memset(p, 0, (size_t)n * sizeof(float));
            alpha[r] = 1;
            continue;
        }
        float sum = l2s_exp_shift_sum16(p, p, n, -new_max);
        float a = run_max[r] == -__builtin_inff() ? 0 : l2s_exp1(run_max[r] - new_max);
        run_sum[r] = run_sum[r] * a + sum;
        run_max[r] = new_max;
        alpha[r] = a;
    }
}

/* p[r][j] ← exp(p[r][j] − shift[r]) for a tile of m rows × n keys (the backward's recomputed P). */
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
static void exp_rows_shifted_avx512(float *p, long m, long n, const float *shift) {
    for (long r = 0; r < m; r++) (void)l2s_exp_shift_sum16(p + r * n, p + r * n, n, -shift[r]);
}
#endif

int l2s_online_softmax_tile(float *s, long m, long n, float *run_max, float *run_sum, float *alpha) {
    L2S_AVX512_OR_DECLINE(online_softmax_tile_avx512(s, m, n, run_max, run_sum, alpha));
    return 0;
}

int l2s_exp_rows_shifted(float *p, long m, long n, const float *shift) {
    L2S_AVX512_OR_DECLINE(exp_rows_shifted_avx512(p, m, n, shift));
    return 0;
}

int l2s_softmax_rows(const float *x, float *y, long rows, long n) {
    L2S_AVX512_OR_DECLINE(softmax_rows_avx512(x, y, rows, n));
    return 0;
}

int l2s_scores_nt(const float *q, long ldq, const float *k, long ldk, float *s, long lds, long m, long n, long d,
                  float alpha) {
    if (d >= 1 && d <= L2S_SCORES_MAX_D) L2S_AVX512_OR_DECLINE(scores_nt_avx512(q, ldq, k, ldk, s, lds, m, n, d, alpha));
    return 0;
}


/* Group norm over rows [lo, hi) of (image, group), each group cpg channels × spatial values, as the
   Swift loops in Sources/Tensors/Ops/Norm.swift (AVX-512; elsewhere those loops run). Statistics: sums
   of (x − x₀) and (x − x₀)² (x₀ = the group's first value) in 16 float lanes over blocks of 512 values,
   block sums added in double. */
#if defined(__x86_64__)
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
static void group_norm_forward_avx512(const float *x, float *out, float *mean, float *rstd, long lo, long hi,
                                      long groups, long cpg, long spatial, const float *weight, const float *bias,
                                      float eps) {
    long size = cpg * spatial;
    for (long r = lo; r < hi; r++) {
        const float *p = x + r * size;
        float *q = out + r * size;
        float shift = size > 0 ? p[0] : 0;
        __m512 sv = _mm512_set1_ps(shift);
        double sum = 0, squares = 0;
        long i = 0;
        while (i + 16 <= size) {
            long end = size - (size - i) % 16;
            if (end > i + 512) end = i + 512;
            __m512 s = _mm512_setzero_ps(), sq = _mm512_setzero_ps();
            for (; i < end; i += 16) {
                __m512 d = _mm512_sub_ps(_mm512_loadu_ps(p + i), sv);
                s = _mm512_add_ps(s, d);
                sq = _mm512_fmadd_ps(d, d, sq);
            }
            sum += _mm512_reduce_add_ps(s);
            squares += _mm512_reduce_add_ps(sq);
        }
        for (; i < size; i++) {
            double d = (double)(p[i] - shift);
            sum += d;
            squares += d * d;
        }
        double m = size > 0 ? sum / (double)size : 0, v = size > 0 ? squares / (double)size - m * m : 0;
        if (v < 0) v = 0;
        float mf = (float)((double)shift + m), sf = (float)(1.0 / __builtin_sqrt(v + (double)eps));
        mean[r] = mf;
        rstd[r] = sf;
        for (long cc = 0; cc < cpg; cc++) {
            long ch = (r % groups) * cpg + cc;
            float scale = sf * (weight ? weight[ch] : 1), offset = (bias ? bias[ch] : 0) - mf * scale;
            const float *src = p + cc * spatial;
            float *dst = q + cc * spatial;
            __m512 a = _mm512_set1_ps(scale), b = _mm512_set1_ps(offset);
            long j = 0;
            for (; j + 16 <= spatial; j += 16) _mm512_storeu_ps(dst + j, _mm512_fmadd_ps(_mm512_loadu_ps(src + j), a, b));
            for (; j < spatial; j++) dst[j] = src[j] * scale + offset;
        }
    }
}

__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))
static void group_norm_backward_avx512(const float *x, const float *gy, float *gx, const float *mean,
                                       const float *rstd, long lo, long hi, long groups, long cpg, long spatial,
                                       const float *weight, float *sum_dy, float *sum_dy_xhat) {
    long size = cpg * spatial, channels = groups * cpg;
    for (long r = lo; r < hi; r++) {
        long base = r * size, img = r / groups;
        float m = mean[r], s = rstd[r];
        __m512 mv = _mm512_set1_ps(m);
        double a = 0, b = 0;
        for (long cc = 0; cc < cpg; cc++) {
            long ch = (r % groups) * cpg + cc;
            float gamma = weight ? weight[ch] : 1;
            const float *src = x + base + cc * spatial, *g = gy + base + cc * spatial;
            __m512 va = _mm512_setzero_ps(), vb = _mm512_setzero_ps();
            long j = 0;
            for (; j + 16 <= spatial; j += 16) {
                __m512 gv = _mm512_loadu_ps(g + j);
                va = _mm512_add_ps(va, gv);
                vb = _mm512_fmadd_ps(gv, _mm512_sub_ps(_mm512_loadu_ps(src + j), mv), vb);
            }
            float sd = _mm512_reduce_add_ps(va), centred = _mm512_reduce_add_ps(vb);
            for (; j < spatial; j++) {
                sd += g[j];
                centred += g[j] * (src[j] - m);
            }
            float sdx = centred * s;
            if (sum_dy) sum_dy[img * channels + ch] = sd;
            if (sum_dy_xhat) sum_dy_xhat[img * channels + ch] = sdx;
            a += (double)(sd * gamma);
            b += (double)(sdx * gamma);
        }
        if (!gx) continue;
        float mean_g = (float)(a / (double)size), mean_gx = (float)(b / (double)size);
        for (long cc = 0; cc < cpg; cc++) {
            long ch = (r % groups) * cpg + cc;
            float gamma = weight ? weight[ch] : 1;
            const float *src = x + base + cc * spatial, *g = gy + base + cc * spatial;
            float *dst = gx + base + cc * spatial;
            /* dx = s·(g·γ − mean_g − (x − m)·s·mean_gx) = g·(s·γ) + x·k + c0 with k = −s²·mean_gx. */
            float k = -s * s * mean_gx, c0 = -s * mean_g - m * k, sg = s * gamma;
            __m512 vk = _mm512_set1_ps(k), vc = _mm512_set1_ps(c0), vs = _mm512_set1_ps(sg);
            long j = 0;
            for (; j + 16 <= spatial; j += 16)
                _mm512_storeu_ps(dst + j, _mm512_fmadd_ps(_mm512_loadu_ps(g + j), vs,
                                                          _mm512_fmadd_ps(_mm512_loadu_ps(src + j), vk, vc)));
            for (; j < spatial; j++) {
                float xh = (src[j] - m) * s;
                dst[j] = s * (g[j] * gamma - mean_g - xh * mean_gx);
            }
        }
    }
}
#endif

int l2s_group_norm_forward(const float *x, float *out, float *mean, float *rstd, long lo, long hi, long groups,
                           long cpg, long spatial, const float *weight, const float *bias, float eps) {
    L2S_AVX512_OR_DECLINE(group_norm_forward_avx512(x, out, mean, rstd, lo, hi, groups, cpg, spatial, weight, bias, eps));
    return 0;
}

int l2s_group_norm_backward(const float *x, const float *gy, float *gx, const float *mean, const float *rstd,
                            long lo, long hi, long groups, long cpg, long spatial, const float *weight, float *sum_dy,
                            float *sum_dy_xhat) {
    L2S_AVX512_OR_DECLINE(group_norm_backward_avx512(x, gy, gx, mean, rstd, lo, hi, groups, cpg, spatial, weight,
                                                     sum_dy, sum_dy_xhat));
    return 0;
}
