/* unicode.c - UTF-8, code point classes and the GPT-2 byte map. */
#include "text/unicode.h"

#include <stdlib.h>

uint32_t unicode_decode(const char *s, size_t len, size_t *pos)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = *pos;
    unsigned char b0 = u[i];
    size_t need;
    uint32_t cpt;
    if (b0 < 0x80) {
        *pos = i + 1;
        return b0;
    }
    if ((b0 & 0x40) == 0) {
        goto bad;
    } else if ((b0 & 0x20) == 0) {
        need = 1;
        cpt = b0 & 0x1Fu;
    } else if ((b0 & 0x10) == 0) {
        need = 2;
        cpt = b0 & 0x0Fu;
    } else if ((b0 & 0x08) == 0) {
        need = 3;
        cpt = b0 & 0x07u;
    } else {
        goto bad;
    }
    if (len - i <= need) {
        goto bad;
    }
    for (size_t k = 1; k <= need; k++) {
        if ((u[i + k] & 0xC0) != 0x80) {
            goto bad;
        }
        cpt = (cpt << 6) | (u[i + k] & 0x3Fu);
    }
    /* F5..F7 leads decode past U+10FFFF, which has no UTF-8 form to
     * re-encode; they count as malformed. */
    if (cpt > 0x10FFFF) {
        goto bad;
    }
    *pos = i + need + 1;
    return cpt;
bad:
    *pos = i + 1;
    return UNICODE_REPLACEMENT;
}

size_t unicode_encode(uint32_t cpt, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cpt < 0x80) {
        o[0] = (unsigned char)cpt;
        return 1;
    }
    if (cpt < 0x800) {
        o[0] = (unsigned char)(0xC0 | (cpt >> 6));
        o[1] = (unsigned char)(0x80 | (cpt & 0x3F));
        return 2;
    }
    if (cpt < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cpt >> 12));
        o[1] = (unsigned char)(0x80 | ((cpt >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cpt & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | ((cpt >> 18) & 0x07));
    o[1] = (unsigned char)(0x80 | ((cpt >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cpt >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cpt & 0x3F));
    return 4;
}

size_t unicode_seq_len(unsigned char lead)
{
    static const unsigned char by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1,
                                                     1, 1, 1, 1, 2, 2, 3, 4};
    return by_high_nibble[lead >> 4];
}

uint16_t unicode_flags(uint32_t cpt)
{
    if (cpt > 0x10FFFF) {
        return UNICODE_UNDEFINED;
    }
    /* Last run whose start is <= cpt; runs[0].start is 0. */
    size_t lo = 0, hi = unicode_n_runs;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (unicode_runs[mid].start <= cpt) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return unicode_runs[lo].flags;
}

uint32_t unicode_tolower(uint32_t cpt)
{
    size_t lo = 0, hi = unicode_n_lower;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (unicode_lower[mid].from < cpt) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < unicode_n_lower && unicode_lower[lo].from == cpt) {
        return unicode_lower[lo].to;
    }
    return cpt;
}

/* GPT-2 keeps the printable Latin-1 bytes ('!'..'~', U+00A1..U+00AC,
 * U+00AE..U+00FF) as themselves and numbers the other 68 bytes, in byte
 * order, from U+0100 on. */
static bool byte_is_printable(unsigned b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

/* The 68 non-printable bytes in order are 0x00..0x20 (33), 0x7F..0xA0 (34)
 * and 0xAD. */
uint32_t unicode_byte_cpt(uint8_t b)
{
    if (byte_is_printable(b)) {
        return b;
    }
    if (b <= 0x20) {
        return 0x100u + b;
    }
    if (b != 0xAD) {
        return 0x100u + 33 + (b - 0x7Fu);
    }
    return 0x100u + 67;
}

int unicode_cpt_byte(uint32_t cpt)
{
    if (cpt < 0x100) {
        return byte_is_printable(cpt) ? (int)cpt : -1;
    }
    uint32_t n = cpt - 0x100;
    if (n < 33) {
        return (int)n;
    }
    if (n < 67) {
        return (int)(0x7F + (n - 33));
    }
    return n == 67 ? 0xAD : -1;
}

uint32_t *unicode_decode_all(const char *s, size_t len, size_t *n)
{
    /* At most one code point per byte. */
    if (len > SIZE_MAX / sizeof(uint32_t) - 1) {
        return NULL;
    }
    uint32_t *cpts = malloc((len + 1) * sizeof *cpts);
    if (!cpts) {
        return NULL;
    }
    size_t pos = 0, k = 0;
    while (pos < len) {
        cpts[k++] = unicode_decode(s, len, &pos);
    }
    *n = k;
    return cpts;
}
