/*
 * avx2.c - the AVX2 + FMA + F16C kernel set (compiled with -mavx2 -mfma
 * -mf16c; chosen only when cpuid and XCR0 say the CPU and OS support it).
 * The bodies live in x86_body.h, shared with avx512.c.
 */
#if defined(__x86_64__) || defined(__i386__)

#define KX_VNNI 0
#define KX_FILL kernels_fill_avx2
#define KX_NAME "avx2"
#define KX_EXTRA_FILL 0
#include "kernels/x86_body.h"

#else
typedef int kernels_avx2_unused; /* ISO C wants a non-empty unit */
#endif
