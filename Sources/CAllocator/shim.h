// glibc allocator tuning (not exported by Swift's Glibc module): keep freed large buffers for reuse
// instead of unmapping them, so the kernel does not have to zero fresh pages for every temporary.
// (OpenBLAS is not linked: Sources/Tensors/BLAS.swift opens it at run time, after choosing its kernels.)
#include <malloc.h>
static inline void l2s_keep_freed_memory(void) {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  /* glibc's maximum on 64-bit */
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
}
/* Returns the free memory at the top of the heap and in the arenas to the kernel. */
static inline void l2s_release_free_memory(void) { malloc_trim(0); }
