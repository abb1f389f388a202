#include "base/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *loft_code_name(loft_code code)
{
    switch (code) {
    case LOFT_OK: return "ok";
    case LOFT_ERR_IO: return "io error";
    case LOFT_ERR_FORMAT: return "format error";
    case LOFT_ERR_UNSUPPORTED: return "unsupported";
    case LOFT_ERR_NOMEM: return "out of memory";
    case LOFT_ERR_ARG: return "bad argument";
    case LOFT_ERR_RANGE: return "out of range";
    }
    return "unknown error";
}

loft_code loft_fail(loft_status *st, loft_code code, const char *fmt, ...)
{
    if (st) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->msg, sizeof st->msg, fmt, ap);
        va_end(ap);
        st->code = code;
    }
    return code;
}

void loft_status_clear(loft_status *st)
{
    if (st) {
        st->code = LOFT_OK;
        st->msg[0] = '\0';
    }
}
