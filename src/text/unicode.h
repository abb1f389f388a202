/*
 * unicode.h - what the tokenizers need to know about code points: UTF-8
 * decoding with llama.cpp's error rule, class flags for the pre-tokenizer
 * regexes, simple lowercase, and GPT-2's byte <-> code point map.
 */
#ifndef LOFT_TEXT_UNICODE_H
#define LOFT_TEXT_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Class bits (scripts/gen-unicode-tables.py writes the same values). A code
 * point has exactly one of the low eight (its general category group) and
 * may have UNICODE_WHITESPACE. 0 is reserved for "no code point" (outside a
 * text), which no real code point has. */
enum {
    UNICODE_UNDEFINED = 0x01,  /* unassigned (Cn) or beyond U+10FFFF */
    UNICODE_NUMBER = 0x02,     /* \p{N} */
    UNICODE_LETTER = 0x04,     /* \p{L} */
    UNICODE_SEPARATOR = 0x08,  /* \p{Z} */
    UNICODE_MARK = 0x10,       /* \p{M} */
    UNICODE_PUNCT = 0x20,      /* \p{P} */
    UNICODE_SYMBOL = 0x40,     /* \p{S} */
    UNICODE_CONTROL = 0x80,    /* \p{C} less Cn */
    UNICODE_WHITESPACE = 0x100 /* \s: the White_Space property */
};

typedef struct unicode_run {
    uint32_t start;
    uint16_t flags;
} unicode_run;

typedef struct unicode_pair {
    uint32_t from;
    uint32_t to;
} unicode_pair;

/* Generated tables (unicode_data.c). */
extern const char unicode_data_version[];
extern const unicode_run unicode_runs[];
extern const size_t unicode_n_runs;
extern const unicode_pair unicode_lower[];
extern const size_t unicode_n_lower;

#define UNICODE_REPLACEMENT 0xFFFDu

/* Decodes one code point from s[*pos..len). A malformed or truncated
 * sequence yields U+FFFD and consumes exactly one byte, as llama.cpp does
 * (overlong forms and surrogates are accepted as they decode). */
uint32_t unicode_decode(const char *s, size_t len, size_t *pos);

/* Encodes cpt (<= 0x10FFFF) into out (4 bytes room); returns the length. */
size_t unicode_encode(uint32_t cpt, char *out);

/* Length of the UTF-8 sequence a lead byte announces (1 for a stray
 * continuation byte), as llama.cpp's unicode_len_utf8. */
size_t unicode_seq_len(unsigned char lead);

/* Class bits of cpt (UNICODE_UNDEFINED beyond U+10FFFF). */
uint16_t unicode_flags(uint32_t cpt);

/* Simple lowercase mapping; cpt itself when it has none. */
uint32_t unicode_tolower(uint32_t cpt);

/* GPT-2 byte-level map: byte b is written as code point unicode_byte_cpt(b);
 * unicode_cpt_byte reverses it, returning -1 for a code point that is not
 * the image of a byte. */
uint32_t unicode_byte_cpt(uint8_t b);
int unicode_cpt_byte(uint32_t cpt);

/* Decodes all of s into a malloc'd array of code points (*n of them);
 * NULL on allocation failure. An empty input gives a non-NULL array. */
uint32_t *unicode_decode_all(const char *s, size_t len, size_t *n);

#endif
