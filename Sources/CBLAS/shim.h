// OpenBLAS's cblas interface (Debian: libopenblas-dev; pkg-config "openblas" gives the include path).
#include <cblas.h>
// OpenBLAS extensions to set and read its worker-thread count.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
