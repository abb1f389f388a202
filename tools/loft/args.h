/*
 * args.h - the command-line options shared by `loft run`, `loft chat` and
 * `loft perplexity`, spelled as llama.cpp spells them so existing command
 * lines work with the program name changed.
 */
#ifndef LOFT_TOOL_ARGS_H
#define LOFT_TOOL_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "infer/sample.h"

#define ARGS_MAX_LORA 8

typedef struct loft_args {
    const char *cmd; /* "run", "chat", "perplexity": used in messages */
    const char *model;
    const char *prompt;        /* -p */
    const char *file;          /* -f */
    const char *system_prompt; /* -sys */
    const char *chat_template; /* --chat-template */
    int32_t n_predict;         /* -n; -1 (or -2) = until end of generation / full context */
    int32_t n_ctx;             /* -c */
    int32_t n_threads;         /* -t */
    int32_t n_batch;           /* -b */
    int32_t n_ubatch;          /* -ub */
    int32_t n_keep;            /* --keep; -1 = the whole prompt */
    int32_t n_chunks;          /* --chunks (perplexity) */
    int64_t seed;              /* -s; -1 = from the clock */
    loft_sampler_params sampling;
    int32_t repeat_last_n; /* as given; -1 = the context size */
    bool single_turn;      /* -st */
    bool conversation;     /* -cnv */
    bool no_conversation;  /* -no-cnv */
    bool no_display_prompt;
    bool context_shift;
    bool escape; /* -e (default on), --no-escape */
    bool verbose_prompt;
    bool help;
    uint64_t mem_limit; /* --mem-limit SIZE in bytes; 0 = the RAM available */
    int32_t bench_runs; /* --bench N: N timed runs after a warm-up (run only); 0 = off */
    /* --lora FILE (scale 1) / --lora-scaled FILE SCALE, in order given */
    const char *lora[ARGS_MAX_LORA];
    float lora_scale[ARGS_MAX_LORA];
    int n_lora;
} loft_args;

/* Parses argv[1..argc) into a. Returns 0 on success (a->help set when -h
 * was given), or 2 after printing one line "loft CMD: ..." to stderr for an
 * unknown flag, a missing value or a value out of range. Flags that mean
 * nothing on a CPU (-ngl, -fa, --no-mmap, ...) are accepted with a note on
 * stderr. */
int args_parse(loft_args *a, const char *cmd, int argc, char **argv);

/* Prints the shared options, one per line, to f. */
void args_print_usage(FILE *f);

/* Replaces the escape sequences \n \r \t \\ \' \" \? \a \b \f \v \xHH in s,
 * in place (llama.cpp's -e). */
void args_unescape(char *s);

/* Reads a whole file into a NUL-terminated malloc'd buffer; on failure
 * prints "loft CMD: PATH: reason" and returns NULL. A file over 1 GiB is
 * refused before it is read (with the memory tokenizing it would take). */
char *args_read_file(const char *cmd, const char *path, size_t *len);

/* True when s[0..len) is valid UTF-8 (no overlongs, no surrogates, no
 * code points above U+10FFFF); *bad_at receives the offset of the first
 * invalid byte otherwise. */
bool args_valid_utf8(const char *s, size_t len, size_t *bad_at);

#endif
