/*
 * cmd_quantize.c - `loft quantize [options] IN.gguf OUT.gguf TYPE [nthreads]`,
 * llama-quantize's command line: rewrites a model with another tensor type
 * or K-quant mix, keeping the tokenizer and all metadata.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quantize_model.h"
#include "commands.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: loft quantize [--pure] [--allow-requantize] [-t N] IN.gguf OUT.gguf TYPE "
        "[nthreads]\n\n"
        "  TYPE                one of %s\n"
        "  --pure              every matrix gets TYPE (no per-tensor mix rules)\n"
        "  --allow-requantize  convert tensors that are already quantized (loses accuracy)\n"
        "  -t, --threads N     worker threads (default: all cores); a trailing number works too\n"
        "  -q, --quiet         no per-tensor lines (warnings still shown)\n",
        quantize_ftype_names());
}

static int parse_threads(const char *s, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < 1 || v > 1024) return 0;
    *out = (int)v;
    return 1;
}

int cmd_quantize(int argc, char **argv)
{
    quantize_params p = {.log = stderr, .verbose = true};
    const char *pos[4] = {0};
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--pure")) {
            p.pure = true;
        } else if (!strcmp(a, "--allow-requantize")) {
            p.allow_requantize = true;
        } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            p.verbose = false;
        } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
            if (i + 1 >= argc || !parse_threads(argv[++i], &p.n_threads)) {
                fprintf(stderr, "loft quantize: %s needs a thread count from 1 to 1024\n", a);
                return 2;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "loft quantize: unknown option '%s' (see --help)\n", a);
            return 2;
        } else if (n_pos < 4) {
            pos[n_pos++] = a;
        } else {
            fprintf(stderr, "loft quantize: too many arguments (see --help)\n");
            return 2;
        }
    }
    if (n_pos < 3) {
        usage(stderr);
        return 2;
    }
    if (n_pos == 4 && !parse_threads(pos[3], &p.n_threads)) {
        fprintf(stderr, "loft quantize: invalid nthreads '%s'\n", pos[3]);
        return 2;
    }
    p.ftype = quantize_ftype_from_name(pos[2]);
    if (!p.ftype) {
        fprintf(stderr, "loft quantize: unknown type '%s'; known: %s\n", pos[2],
                quantize_ftype_names());
        return 2;
    }
    if (!strcmp(pos[0], pos[1])) {
        fprintf(stderr, "loft quantize: input and output are the same file '%s'\n", pos[0]);
        return 2;
    }
    loft_status st = {0};
    quantize_summary sum;
    if (quantize_model(pos[0], pos[1], &p, &sum, &st) != LOFT_OK) {
        fprintf(stderr, "loft quantize: %s\n", st.msg);
        return 1;
    }
    fprintf(stderr,
            "loft quantize: %s -> %s (%s): %d tensors, %d converted (%d requantized, %d with a "
            "fallback type), %.2f MiB -> %.2f MiB\n",
            pos[0], pos[1], p.ftype->name, sum.n_tensors, sum.n_converted, sum.n_requantized,
            sum.n_fallback, (double)sum.bytes_in / 1048576.0, (double)sum.bytes_out / 1048576.0);
    return 0;
}
