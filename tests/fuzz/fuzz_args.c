/*
 * fuzz_args.c - libFuzzer target for the command-line parser of `loft run`,
 * `loft chat` and `loft perplexity` (tools/loft/args.c, compiled into this
 * file so the fuzzer needs nothing from the tool's other sources).
 *
 * The input is split at NUL bytes into argv[1..] (at most 64 arguments);
 * the first byte picks the command name. Whatever the parser accepts must
 * leave the fields in the ranges its users rely on. Every argument is also
 * run through args_unescape and args_valid_utf8. Run with `make fuzz`.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/loft/args.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_ARGS 64

/* The parser reports bad flags on stderr; a million of those lines would
 * drown the fuzzer's own log. Sanitizer reports go to file descriptor 2
 * directly, so they are still seen. */
static void quiet_stderr(void)
{
    static bool done;
    if (done) return;
    done = true;
    FILE *devnull = fopen("/dev/null", "w");
    if (devnull) stderr = devnull;
}

static void check_ranges(const loft_args *a)
{
    if (a->help) return;
    if (a->n_lora < 0 || a->n_lora > ARGS_MAX_LORA) abort();
    for (int i = 0; i < a->n_lora; i++)
        if (!a->lora[i] || a->lora_scale[i] != a->lora_scale[i]) abort();
    if (a->n_ctx < 0 || a->n_threads < 0 || a->n_batch < 0 || a->n_ubatch < 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    quiet_stderr();
    static const char *cmds[] = {"run", "chat", "perplexity"};
    const char *cmd = cmds[size ? data[0] % 3 : 0];
    /* A NUL-terminated copy, split in place. */
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    if (size > 1) memcpy(buf, data + 1, size - 1);
    size_t n = size > 0 ? size - 1 : 0;
    buf[n] = '\0';
    char *argv[FUZZ_MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = (char *)"loft";
    for (size_t i = 0; i < n && argc <= FUZZ_MAX_ARGS;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;

    loft_args a;
    memset(&a, 0, sizeof a);
    if (args_parse(&a, cmd, argc, argv) == 0) check_ranges(&a);

    for (int i = 1; i < argc; i++) {
        size_t len = strlen(argv[i]), bad_at = 0;
        if (!args_valid_utf8(argv[i], len, &bad_at) && bad_at > len) abort();
        args_unescape(argv[i]);
        if (strlen(argv[i]) > len) abort();
    }
    free(buf);
    return 0;
}
