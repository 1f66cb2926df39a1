// libpng (Debian: libpng-dev). The simplified read/write API (png_image) is all we use.
#include <png.h>
