/* status.h - building error messages into a loft_status. */
#ifndef LOFT_BASE_STATUS_H
#define LOFT_BASE_STATUS_H

#include "loft.h"

#if defined(__GNUC__)
#define LOFT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define LOFT_PRINTF(a, b)
#endif

/* Sets st (if not NULL) to code and a printf-formatted message, and returns
 * code, so a caller can write `return loft_fail(st, LOFT_ERR_IO, ...)`. */
loft_code loft_fail(loft_status *st, loft_code code, const char *fmt, ...) LOFT_PRINTF(3, 4);

/* Resets st to LOFT_OK with an empty message. */
void loft_status_clear(loft_status *st);

#endif
