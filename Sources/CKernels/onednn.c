/* 2-D convolution through oneDNN's JIT primitives (forward, backward data, backward weights), opened
   at run time like OpenBLAS: compiled where the headers are (libdnnl-dev), used where libdnnl.so.2
   loads and gives a JIT implementation for the shape, declined (return 0: the engine's own GEMM
   convolution runs) everywhere else. The engine's tensors stay NCHW / OIHW; each call reorders into
   the blocked layouts the primitive chose and back, a copy of each tensor (which convs pay for it:
   `OneDNNConv` in Sources/Tensors/Ops/Conv.swift).

   Primitives are cached by shape (JIT compilation costs milliseconds) behind one lock; they run
   without it, each calling thread with its own stream, scratchpad (user-managed) and buffers, so
   calls from several threads may run at once. Each call runs on oneDNN's OpenMP threads, as many as
   the caller asks for (one: on the calling thread itself). */
#include "CKernels.h"

#if defined(__has_include)
#if __has_include(<oneapi/dnnl/dnnl.h>)
#define L2S_HAVE_DNNL_HEADERS 1
#endif
#endif

#ifdef L2S_HAVE_DNNL_HEADERS
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <oneapi/dnnl/dnnl.h>

#define L2S_DNNL_FUNCTIONS(X)                                                                      \
    X(dnnl_engine_create) X(dnnl_stream_create) X(dnnl_stream_wait) X(dnnl_memory_desc_init_by_tag) \
    X(dnnl_memory_desc_equal) X(dnnl_memory_desc_get_size) X(dnnl_memory_create)                    \
    X(dnnl_memory_destroy) X(dnnl_primitive_desc_create) X(dnnl_primitive_desc_destroy)             \
    X(dnnl_primitive_desc_query) X(dnnl_primitive_desc_query_md) X(dnnl_primitive_create)           \
    X(dnnl_primitive_execute) X(dnnl_reorder_primitive_desc_create)                                 \
    X(dnnl_convolution_forward_desc_init) X(dnnl_convolution_backward_data_desc_init)               \
    X(dnnl_convolution_backward_weights_desc_init) X(dnnl_primitive_attr_create)                    \
    X(dnnl_primitive_attr_set_scratchpad_mode) X(dnnl_stream_destroy) X(dnnl_primitive_destroy)

static struct {
#define L2S_DNNL_POINTER(name) __typeof__(&name) name;
    L2S_DNNL_FUNCTIONS(L2S_DNNL_POINTER)
#undef L2S_DNNL_POINTER
    void (*omp_set_num_threads)(int);
    dnnl_engine_t engine;
    dnnl_primitive_attr_t attr;  /* user-managed scratchpad: primitives may run on several threads at once */
    int ready;
    int winograd;  /* 3×3 stride-1 convolutions try Winograd first (L2S_CONV_ALGO=direct: never) */
} api;

static pthread_once_t api_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void load_api(void) {
    const char *choice = getenv("L2S_CONV");
    if (choice && strcmp(choice, "builtin") == 0) return;
    const char *algorithm = getenv("L2S_CONV_ALGO");
    api.winograd = !(algorithm && strcmp(algorithm, "direct") == 0);
    /* libgomp's threads spin for 300,000 iterations after each parallel region by default, taking
       the cores from the engine's own threads; sleeping at once (PASSIVE) pays a wake-up per call.
       A short spin measured best on the training step (322–333 ms against 339–347 PASSIVE and
       345–356 default, batch 32, 2 threads). A user's OMP_WAIT_POLICY or GOMP_SPINCOUNT is kept;
       libgomp reads them when it loads, with libdnnl. */
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) setenv("GOMP_SPINCOUNT", "10000", 1);
    void *handle = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!handle) handle = dlopen("libdnnl.so", RTLD_NOW | RTLD_LOCAL);
    if (!handle) return;
#define L2S_DNNL_RESOLVE(name)                                          \
    api.name = (__typeof__(&name))dlsym(handle, #name);                 \
    if (!api.name) return;
    L2S_DNNL_FUNCTIONS(L2S_DNNL_RESOLVE)
#undef L2S_DNNL_RESOLVE
    api.omp_set_num_threads = (void (*)(int))dlsym(handle, "omp_set_num_threads");
    if (api.dnnl_engine_create(&api.engine, dnnl_cpu, 0) != dnnl_success) return;
    if (api.dnnl_primitive_attr_create(&api.attr) != dnnl_success ||
        api.dnnl_primitive_attr_set_scratchpad_mode(api.attr, dnnl_scratchpad_mode_user) != dnnl_success) return;
    api.ready = 1;
}

enum { KIND_FORWARD, KIND_BACKWARD_DATA, KIND_BACKWARD_WEIGHTS };

typedef struct {
    long n, cin, h, w, cout, kh, kw, stride, pad;
    int kind, bias;
} conv_key;

/* One cached primitive. Its three tensors, by kind: forward (src x, weights w, dst y), backward
   data (diff_dst dy, weights w, diff_src dx), backward weights (diff_dst dy, src x, diff_weights dw).
   The first two are read (reordered user → internal), the third written (internal → user);
   reorder[i] is NULL where the primitive takes the user's layout as it is. */
typedef struct {
    conv_key key;
    int usable;
    int winograd;  /* the primitive is oneDNN's Winograd F(4×4, 3×3), not a direct convolution */
    dnnl_primitive_t primitive;
    dnnl_memory_desc_t user[3], internal[3];
    dnnl_primitive_t reorder[3];
    int arg[3];
    dnnl_memory_desc_t scratchpad, bias;
} conv_entry;

enum { CACHE_CAPACITY = 512 };
static conv_entry cache[CACHE_CAPACITY];
static int cache_count;

static int same_key(const conv_key *a, const conv_key *b) {
    return a->n == b->n && a->cin == b->cin && a->h == b->h && a->w == b->w && a->cout == b->cout &&
           a->kh == b->kh && a->kw == b->kw && a->stride == b->stride && a->pad == b->pad &&
           a->kind == b->kind && a->bias == b->bias;
}

static dnnl_primitive_t make_reorder(const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to, int *failed) {
    if (api.dnnl_memory_desc_equal(from, to)) return NULL;
    dnnl_primitive_desc_t pd;
    dnnl_primitive_t p = NULL;
    if (api.dnnl_reorder_primitive_desc_create(&pd, from, api.engine, to, api.engine, api.attr) != dnnl_success) {
        *failed = 1;
        return NULL;
    }
    /* A reorder that needs a scratchpad is not expected between plain and blocked f32 layouts. */
    const dnnl_memory_desc_t *pad = api.dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    if ((pad && api.dnnl_memory_desc_get_size(pad) > 0) || api.dnnl_primitive_create(&p, pd) != dnnl_success) *failed = 1;
    api.dnnl_primitive_desc_destroy(pd);
    return p;
}

/* Builds the entry for `key` with `algorithm` (usable = 0 when oneDNN has no JIT implementation
   for it or fails). */
static void build_entry_with(conv_entry *e, const conv_key *k, dnnl_alg_kind_t algorithm) {
    memset(e, 0, sizeof *e);
    e->key = *k;
    e->winograd = algorithm == dnnl_convolution_winograd;
    dnnl_dims_t src_dims = {k->n, k->cin, k->h, k->w};
    long ho = (k->h + 2 * k->pad - k->kh) / k->stride + 1, wo = (k->w + 2 * k->pad - k->kw) / k->stride + 1;
    dnnl_dims_t dst_dims = {k->n, k->cout, ho, wo};
    dnnl_dims_t w_dims = {k->cout, k->cin, k->kh, k->kw};
    dnnl_dims_t b_dims = {k->cout};
    dnnl_dims_t strides = {k->stride, k->stride}, padding = {k->pad, k->pad};
    dnnl_memory_desc_t src_any, dst_any, w_any, src_user, dst_user, w_user, b_user;
    api.dnnl_memory_desc_init_by_tag(&src_any, 4, src_dims, dnnl_f32, dnnl_format_tag_any);
    api.dnnl_memory_desc_init_by_tag(&dst_any, 4, dst_dims, dnnl_f32, dnnl_format_tag_any);
    api.dnnl_memory_desc_init_by_tag(&w_any, 4, w_dims, dnnl_f32, dnnl_format_tag_any);
    api.dnnl_memory_desc_init_by_tag(&src_user, 4, src_dims, dnnl_f32, dnnl_nchw);
    api.dnnl_memory_desc_init_by_tag(&dst_user, 4, dst_dims, dnnl_f32, dnnl_nchw);
    api.dnnl_memory_desc_init_by_tag(&w_user, 4, w_dims, dnnl_f32, dnnl_oihw);
    api.dnnl_memory_desc_init_by_tag(&b_user, 1, b_dims, dnnl_f32, dnnl_x);
    e->bias = b_user;

    /* The forward descriptor is the primitive itself for KIND_FORWARD and the hint for the others. */
    dnnl_convolution_desc_t forward;
    if (api.dnnl_convolution_forward_desc_init(&forward, dnnl_forward_training, algorithm, &src_any,
                                               &w_any, k->bias ? &b_user : NULL, &dst_any, strides, padding,
                                               padding) != dnnl_success) return;
    dnnl_primitive_desc_t forward_pd, pd;
    if (api.dnnl_primitive_desc_create(&forward_pd, &forward, api.attr, api.engine, NULL) != dnnl_success) return;
    pd = forward_pd;
    if (k->kind == KIND_BACKWARD_DATA) {
        dnnl_convolution_desc_t d;
        if (api.dnnl_convolution_backward_data_desc_init(&d, algorithm, &src_any, &w_any, &dst_any,
                                                         strides, padding, padding) != dnnl_success ||
            api.dnnl_primitive_desc_create(&pd, &d, api.attr, api.engine, forward_pd) != dnnl_success) {
            api.dnnl_primitive_desc_destroy(forward_pd);
            return;
        }
    } else if (k->kind == KIND_BACKWARD_WEIGHTS) {
        dnnl_convolution_desc_t d;
        if (api.dnnl_convolution_backward_weights_desc_init(&d, algorithm, &src_any, &w_any, NULL,
                                                            &dst_any, strides, padding, padding) != dnnl_success ||
            api.dnnl_primitive_desc_create(&pd, &d, api.attr, api.engine, forward_pd) != dnnl_success) {
            api.dnnl_primitive_desc_destroy(forward_pd);
            return;
        }
    }
    const char *impl = NULL;
    /* "jit:avx512_core", "jit_1x1:avx2", "gemm:jit" and the like; never "ref:any" (plain loops). */
    int jit = api.dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl &&
              strstr(impl, "jit") != NULL && strstr(impl, "ref") == NULL;
    int failed = !jit;
    if (!failed) {
        dnnl_query_t queries[3];
        const dnnl_memory_desc_t *users[3];
        if (k->kind == KIND_FORWARD) {
            queries[0] = dnnl_query_src_md; queries[1] = dnnl_query_weights_md; queries[2] = dnnl_query_dst_md;
            users[0] = &src_user; users[1] = &w_user; users[2] = &dst_user;
            e->arg[0] = DNNL_ARG_SRC; e->arg[1] = DNNL_ARG_WEIGHTS; e->arg[2] = DNNL_ARG_DST;
        } else if (k->kind == KIND_BACKWARD_DATA) {
            queries[0] = dnnl_query_diff_dst_md; queries[1] = dnnl_query_weights_md; queries[2] = dnnl_query_diff_src_md;
            users[0] = &dst_user; users[1] = &w_user; users[2] = &src_user;
            e->arg[0] = DNNL_ARG_DIFF_DST; e->arg[1] = DNNL_ARG_WEIGHTS; e->arg[2] = DNNL_ARG_DIFF_SRC;
        } else {
            queries[0] = dnnl_query_diff_dst_md; queries[1] = dnnl_query_src_md; queries[2] = dnnl_query_diff_weights_md;
            users[0] = &dst_user; users[1] = &src_user; users[2] = &w_user;
            e->arg[0] = DNNL_ARG_DIFF_DST; e->arg[1] = DNNL_ARG_SRC; e->arg[2] = DNNL_ARG_DIFF_WEIGHTS;
        }
        for (int i = 0; i < 3 && !failed; i++) {
            const dnnl_memory_desc_t *md = api.dnnl_primitive_desc_query_md(pd, queries[i], 0);
            if (!md) { failed = 1; break; }
            e->user[i] = *users[i];
            e->internal[i] = *md;
            e->reorder[i] = i < 2 ? make_reorder(&e->user[i], &e->internal[i], &failed)
                                  : make_reorder(&e->internal[i], &e->user[i], &failed);
        }
        const dnnl_memory_desc_t *pad = api.dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
        if (pad) e->scratchpad = *pad;
        if (!failed && api.dnnl_primitive_create(&e->primitive, pd) != dnnl_success) failed = 1;
    }
    if (pd != forward_pd) api.dnnl_primitive_desc_destroy(pd);
    api.dnnl_primitive_desc_destroy(forward_pd);
    e->usable = !failed;
}

/* Releases what a failed build left (the reorders made before the failure). */
static void discard_entry(conv_entry *e) {
    for (int i = 0; i < 3; i++)
        if (e->reorder[i]) api.dnnl_primitive_destroy(e->reorder[i]);
    if (e->primitive) api.dnnl_primitive_destroy(e->primitive);
    memset(e, 0, sizeof *e);
}

/* 3×3 stride-1 convolutions take Winograd F(4×4, 3×3) where oneDNN has a JIT one for the shape
   (avx512_core; channel counts oneDNN accepts), direct otherwise. Its multiplications are a quarter
   of direct's, paid for with input/output tile transforms and ~5× direct's rounding (largest error
   against the engine's own conv, over the output's scale: 2.5e-6 forward, 2.1e-6 dx for C128 16×16,
   against 4.4e-7 and 3.9e-7 direct). `l2s bench engine`, 2 threads, batch 32, Zen 5, alternated 3×: C128 16×16
   fwd 3.8–4.8 ms against 5.9–6.6 direct, fwd+bwd 11.6–16.0 against 18.6–19.8; C64 32×32 fwd
   4.0–6.5 against 6.8–8.1, fwd+bwd 15.5–23.0 against 22.3–25.6; training step 330–336 ms against
   345–350. Only from batch WINOGRAD_MIN_BATCH: Stable Diffusion's CFG batch of 2 measured slower
   with it (`l2s bench unet --fp16`, alternated twice: 256² 1.39 / 1.44 s against 1.26 / 1.35 direct,
   512² 5.25 / 4.73 s against 5.02 / 4.61). */
enum { WINOGRAD_MIN_BATCH = 8 };
static void build_entry(conv_entry *e, const conv_key *k) {
    if (api.winograd && k->kh == 3 && k->kw == 3 && k->stride == 1 && k->n >= WINOGRAD_MIN_BATCH) {
        build_entry_with(e, k, dnnl_convolution_winograd);
        if (e->usable) return;
        discard_entry(e);
    }
    build_entry_with(e, k, dnnl_convolution_direct);
}

/* Looks up or builds the entry; NULL when the cache is full (the caller declines). Entries are
   immutable once built and never move, so the pointer stays valid after the lock is released; they
   (and their primitives) live as long as the process. */
static conv_entry *entry_for(const conv_key *k) {
    pthread_mutex_lock(&lock);
    conv_entry *found = NULL;
    for (int i = 0; i < cache_count && !found; i++)
        if (same_key(&cache[i].key, k)) found = &cache[i];
    if (!found && cache_count < CACHE_CAPACITY) {
        build_entry(&cache[cache_count], k);
        found = &cache[cache_count++];
    }
    pthread_mutex_unlock(&lock);
    return found;
}

static dnnl_memory_t wrap(const dnnl_memory_desc_t *md, void *data) {
    dnnl_memory_t m = NULL;
    if (api.dnnl_memory_create(&m, md, api.engine, data) != dnnl_success) return NULL;
    return m;
}

/* Per calling thread: a stream, and the blocked copies of the three tensors plus the scratchpad in
   buffers reused from call to call (fresh multi-megabyte allocations each call cost page faults).
   One over SCRATCH_KEEP bytes (a VAE decoder at 512²) is released after its call. */
enum { SCRATCH_KEEP = 64 << 20, SCRATCH_SLOTS = 4 };
typedef struct {
    dnnl_stream_t stream;
    void *buffer[SCRATCH_SLOTS];
    size_t size[SCRATCH_SLOTS];
} thread_state;
static __thread thread_state local;
static pthread_key_t local_key;
static pthread_once_t local_key_once = PTHREAD_ONCE_INIT;

static void release_local(void *unused) {
    (void)unused;
    for (int i = 0; i < SCRATCH_SLOTS; i++) {
        free(local.buffer[i]);
        local.buffer[i] = NULL;
        local.size[i] = 0;
    }
    if (local.stream) api.dnnl_stream_destroy(local.stream);
    local.stream = NULL;
}

static void make_local_key(void) { pthread_key_create(&local_key, release_local); }

static dnnl_stream_t local_stream(void) {
    if (!local.stream) {
        pthread_once(&local_key_once, make_local_key);
        if (api.dnnl_stream_create(&local.stream, api.engine, dnnl_stream_default_flags) != dnnl_success) {
            local.stream = NULL;
            return NULL;
        }
        pthread_setspecific(local_key, &local);  /* frees the buffers when the thread ends */
    }
    return local.stream;
}

static void *scratch_buffer(int i, size_t size) {
    if (local.size[i] < size) {
        free(local.buffer[i]);
        local.buffer[i] = NULL;
        local.size[i] = 0;
        if (posix_memalign(&local.buffer[i], 64, size) != 0) return NULL;
        local.size[i] = size;
    }
    return local.buffer[i];
}

static void trim_scratch(void) {
    for (int i = 0; i < SCRATCH_SLOTS; i++)
        if (local.size[i] > SCRATCH_KEEP) {
            free(local.buffer[i]);
            local.buffer[i] = NULL;
            local.size[i] = 0;
        }
}

static int run_reorder(dnnl_primitive_t r, dnnl_stream_t stream, dnnl_memory_t from, dnnl_memory_t to) {
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return api.dnnl_primitive_execute(r, stream, 2, args) == dnnl_success;
}

/* Runs entry e on user buffers a, b (read) and c (written), plus the forward's bias. */
static int run_entry(const conv_entry *e, const float *a, const float *b, float *c, const float *bias) {
    dnnl_stream_t stream = local_stream();
    if (!stream) return 0;
    const void *data[3] = {a, b, c};
    dnnl_memory_t user[3] = {NULL, NULL, NULL}, internal[3] = {NULL, NULL, NULL}, bias_memory = NULL, pad = NULL;
    int ok = 1;
    for (int i = 0; i < 3 && ok; i++) {
        user[i] = wrap(&e->user[i], (void *)data[i]);
        if (!user[i]) { ok = 0; break; }
        if (e->reorder[i]) {
            void *buffer = scratch_buffer(i, api.dnnl_memory_desc_get_size(&e->internal[i]));
            internal[i] = buffer ? wrap(&e->internal[i], buffer) : NULL;
            if (!internal[i]) { ok = 0; break; }
            if (i < 2) ok = run_reorder(e->reorder[i], stream, user[i], internal[i]);
        }
    }
    size_t pad_size = api.dnnl_memory_desc_get_size(&e->scratchpad);
    if (ok && pad_size > 0) {
        void *buffer = scratch_buffer(3, pad_size);
        pad = buffer ? wrap(&e->scratchpad, buffer) : NULL;
        ok = pad != NULL;
    }
    if (ok && e->key.bias) {
        bias_memory = wrap(&e->bias, (void *)bias);
        ok = bias_memory != NULL;
    }
    if (ok) {
        dnnl_exec_arg_t args[5];
        int count = 0;
        for (int i = 0; i < 3; i++) {
            args[count].arg = e->arg[i];
            args[count].memory = internal[i] ? internal[i] : user[i];
            count++;
        }
        if (bias_memory) {
            args[count].arg = DNNL_ARG_BIAS;
            args[count].memory = bias_memory;
            count++;
        }
        if (pad) {
            args[count].arg = DNNL_ARG_SCRATCHPAD;
            args[count].memory = pad;
            count++;
        }
        ok = api.dnnl_primitive_execute(e->primitive, stream, count, args) == dnnl_success;
    }
    if (ok && e->reorder[2]) ok = run_reorder(e->reorder[2], stream, internal[2], user[2]);
    if (ok) ok = api.dnnl_stream_wait(stream) == dnnl_success;
    else api.dnnl_stream_wait(stream);
    for (int i = 0; i < 3; i++) {
        if (user[i]) api.dnnl_memory_destroy(user[i]);
        if (internal[i]) api.dnnl_memory_destroy(internal[i]);
    }
    if (bias_memory) api.dnnl_memory_destroy(bias_memory);
    if (pad) api.dnnl_memory_destroy(pad);
    trim_scratch();
    return ok;
}

static int conv_call(int kind, const l2s_conv_shape *s, const float *a, const float *b, float *c,
                     const float *bias) {
    pthread_once(&api_once, load_api);
    if (!api.ready) return 0;
    conv_key k = {s->n, s->cin, s->h, s->w, s->cout, s->kh, s->kw, s->stride, s->pad, kind, bias != NULL};
    const conv_entry *e = entry_for(&k);
    if (!e || !e->usable) return 0;
    if (api.omp_set_num_threads) api.omp_set_num_threads(s->threads > 0 ? (int)s->threads : 1);
    return run_entry(e, a, b, c, bias);
}

int l2s_dnnl_conv_forward(const l2s_conv_shape *s, const float *x, const float *w, const float *bias, float *y) {
    return conv_call(KIND_FORWARD, s, x, w, y, bias);
}

int l2s_dnnl_conv_backward_data(const l2s_conv_shape *s, const float *dy, const float *w, float *dx) {
    return conv_call(KIND_BACKWARD_DATA, s, dy, w, dx, NULL);
}

int l2s_dnnl_conv_backward_weights(const l2s_conv_shape *s, const float *dy, const float *x, float *dw) {
    return conv_call(KIND_BACKWARD_WEIGHTS, s, dy, x, dw, NULL);
}

int l2s_dnnl_available(void) {
    pthread_once(&api_once, load_api);
    return api.ready;
}

int l2s_dnnl_conv_algorithm(const l2s_conv_shape *s, int kind) {
    pthread_once(&api_once, load_api);
    if (!api.ready || kind < 0 || kind > 2) return 0;
    conv_key k = {s->n, s->cin, s->h, s->w, s->cout, s->kh, s->kw, s->stride, s->pad, kind, 0};
    const conv_entry *e = entry_for(&k);
    if (!e || !e->usable) return 0;
    return e->winograd ? 2 : 1;
}

#else  /* built without oneDNN's headers: every call declines */

int l2s_dnnl_conv_forward(const l2s_conv_shape *s, const float *x, const float *w, const float *bias, float *y) {
    (void)s; (void)x; (void)w; (void)bias; (void)y;
    return 0;
}
int l2s_dnnl_conv_backward_data(const l2s_conv_shape *s, const float *dy, const float *w, float *dx) {
    (void)s; (void)dy; (void)w; (void)dx;
    return 0;
}
int l2s_dnnl_conv_backward_weights(const l2s_conv_shape *s, const float *dy, const float *x, float *dw) {
    (void)s; (void)dy; (void)x; (void)dw;
    return 0;
}
int l2s_dnnl_available(void) { return 0; }
int l2s_dnnl_conv_algorithm(const l2s_conv_shape *s, int kind) {
    (void)s; (void)kind;
    return 0;
}

#endif
