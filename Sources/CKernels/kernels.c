#include "CKernels.h"
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

typedef struct {
    void (*silu)(const float *, float *, long);
    void (*silu_backward)(const float *, const float *, float *, long);
    void (*geglu)(const float *, float *, long, long);
    void (*geglu_backward)(const float *, const float *, float *, long, long);
    const char *isa;
} l2s_kernel_table;

#define L2S_TABLE(SUFFIX) \
    { silu_##SUFFIX, silu_backward_##SUFFIX, geglu_##SUFFIX, geglu_backward_##SUFFIX, #SUFFIX }

static l2s_kernel_table l2s_choose(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma")) {
        l2s_kernel_table t = L2S_TABLE(avx512);
        return t;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
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
const char *l2s_kernel_isa(void) { return l2s_table()->isa; }
