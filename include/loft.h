/*
 * loft.h - the public C API of libloft.
 *
 * Every fallible call returns a loft_code and, when it is not LOFT_OK, fills
 * the caller's loft_status with one line that names the file or object, the
 * thing that is wrong and what was expected. Library code never exits and
 * never prints to stdout.
 */
#ifndef LOFT_H
#define LOFT_H

#include <stddef.h>
#include <stdint.h>

#define LOFT_VERSION "0.1.0"

typedef enum loft_code {
    LOFT_OK = 0,
    LOFT_ERR_IO,          /* open/read/write/mmap/rename failed */
    LOFT_ERR_FORMAT,      /* a file's contents are malformed */
    LOFT_ERR_UNSUPPORTED, /* well-formed, but loft does not handle it */
    LOFT_ERR_NOMEM,       /* an allocation failed or a size overflowed */
    LOFT_ERR_ARG,         /* a caller passed a bad argument or option */
    LOFT_ERR_RANGE,       /* a value is outside what loft accepts (context, ids) */
} loft_code;

#define LOFT_STATUS_MSG_MAX 1024

typedef struct loft_status {
    loft_code code;
    char msg[LOFT_STATUS_MSG_MAX];
} loft_status;

/* A short, stable name for a code ("io error", "format error", ...). */
const char *loft_code_name(loft_code code);

#endif /* LOFT_H */
