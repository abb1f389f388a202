/*
 * repack.c - packed weight layouts made once at model load, so a kernel
 * reads KERNELS_PACK_ROWS rows with one vector load: for Q4_0, one 32-bit
 * lane per row, 4 nibble bytes (8 values) per lane, and the rows' scales
 * side by side. Plain C: the layout is the same for every instruction set;
 * only the kernels that read it differ.
 */
#include <string.h>

#include "kernels/kernels.h"
#include "kernels/kernels_impl.h"

size_t kernels_pack_group_bytes(uint32_t t, int64_t n_in)
{
    if (t != LOFT_TYPE_Q4_0 || n_in <= 0 || n_in % 32) return 0;
    const int64_t nb = n_in / 32;
    if (nb > (int64_t)(SIZE_MAX / 1024)) return 0;
    return (size_t)nb * 256 + (size_t)(nb + 1) / 2 * 64;
}

size_t kernels_pack_size(const loft_kernels *kt, uint32_t t, int64_t n_in, int64_t n_out)
{
    if (t >= LOFT_TYPE_COUNT || !kt->packed[t] || n_out < KERNELS_PACK_ROWS) return 0;
    const size_t gb = kernels_pack_group_bytes(t, n_in);
    const uint64_t groups = (uint64_t)(n_out / KERNELS_PACK_ROWS);
    if (gb == 0 || groups > SIZE_MAX / gb) return 0;
    return (size_t)groups * gb;
}

void kernels_pack(uint32_t t, const void *w, size_t row_bytes, int64_t n_in, int64_t n_out,
                  void *dst)
{
    const size_t gb = kernels_pack_group_bytes(t, n_in);
    if (gb == 0) return;
    const int64_t nb = n_in / 32;
    for (int64_t g = 0; g < n_out / KERNELS_PACK_ROWS; g++) {
        uint8_t *q = (uint8_t *)dst + (size_t)g * gb;
        if (nb % 2) memset(q + gb - 256 - 32, 0, 32); /* the unused half of the last scale line */
        for (int r = 0; r < KERNELS_PACK_ROWS; r++) {
            const char *row = (const char *)w + (size_t)(g * KERNELS_PACK_ROWS + r) * row_bytes;
            for (int64_t b = 0; b < nb; b++) {
                kq_block_q4_0 blk;
                memcpy(&blk, row + (size_t)b * sizeof blk, sizeof blk);
                uint8_t *pair = q + (size_t)(b / 2) * 576;
                uint8_t *nib = pair + 64 + (size_t)(b % 2) * 256;
                for (int c = 0; c < 4; c++)
                    memcpy(nib + (size_t)c * 64 + (size_t)r * 4, blk.qs + 4 * c, 4);
                memcpy(pair + (size_t)(b % 2) * 32 + (size_t)r * 2, &blk.d, 2);
            }
        }
    }
}
