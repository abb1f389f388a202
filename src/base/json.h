/* json.h - writing JSON text (the reading side lives beside the dataset code). */
#ifndef LOFT_BASE_JSON_H
#define LOFT_BASE_JSON_H

#include <stddef.h>
#include <stdio.h>

/* Writes len bytes of s to f as a quoted JSON string: quotes, backslashes
 * and control characters escaped, bytes >= 0x80 passed through (the input
 * is expected to be UTF-8). */
void json_write_str(FILE *f, const char *s, size_t len);

/* Writes a double as a JSON number; NaN and infinities (not JSON) as null. */
void json_write_num(FILE *f, double v);

#endif
