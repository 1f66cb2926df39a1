// OpenBLAS's cblas interface (Debian: libopenblas-dev; pkg-config "openblas" gives the include path).
#include <cblas.h>
// OpenBLAS extensions to set and read its worker-thread count.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);

// glibc allocator tuning (not exported by Swift's Glibc module): keep freed large buffers for reuse
// instead of unmapping them, so the kernel does not have to zero fresh pages for every temporary.
#include <malloc.h>
static inline void l2s_keep_freed_memory(void) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  /* glibc's maximum on 64-bit */
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
}
