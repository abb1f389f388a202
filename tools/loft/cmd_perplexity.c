/*
 * cmd_perplexity.c - `loft perplexity -m MODEL -f TEXT [-c CTX] [-b N]`:
 * perplexity over a text file by llama.cpp's method (src/eval/perplexity.h),
 * printing the running estimate after each chunk ("[1]12.3456,[2]...") and
 * "Final estimate: PPL = X +/- Y", the same lines llama-perplexity prints.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "eval/perplexity.h"
#include "session.h"

static void ppl_usage(FILE *f)
{
    fprintf(f,
            "usage: loft perplexity -m MODEL -f TEXT [-c CTX] [-b N] [--chunks N]\n"
            "  -c is the chunk length (default 512 here); --chunks limits the chunks scored\n\n");
    args_print_usage(f);
}

static void on_chunk(void *user, int32_t chunk, double running)
{
    (void)user;
    printf("[%d]%.4f,", chunk, running);
    fflush(stdout);
}

int cmd_perplexity(int argc, char **argv)
{
    loft_args a;
    int rc = args_parse(&a, "perplexity", argc, argv);
    if (rc) return rc;
    if (a.help) {
        ppl_usage(stdout);
        return 0;
    }
    bool ctx_given = false;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--ctx-size")) ctx_given = true;
    if (!ctx_given) a.n_ctx = 512;
    if (!a.model) {
        fprintf(stderr, "loft perplexity: no model given (-m FILE)\n");
        return 2;
    }
    if (!a.file) {
        fprintf(stderr, "loft perplexity: no text given (-f FILE)\n");
        return 2;
    }
    if (a.n_ctx < 4) {
        fprintf(stderr, "loft perplexity: -c %d is too small (at least 4)\n", a.n_ctx);
        return 2;
    }
    size_t len = 0;
    char *text = args_read_file("perplexity", a.file, &len);
    if (!text) return 1;
    if (len == 0) {
        fprintf(stderr, "loft perplexity: %s is empty\n", a.file);
        free(text);
        return 2;
    }
    session s;
    /* The session's cache is not used; keep it small. */
    loft_args sa = a;
    sa.n_ctx = 1;
    loft_ppl_params p = {a.n_ctx, a.n_batch < a.n_ctx ? a.n_batch : a.n_ctx, a.n_chunks};
    rc = session_open(&s, &sa, false);
    /* Refused with the real -c and -b before the text's chunks are run. */
    if (!rc) rc = session_check_fit(&s, p.n_ctx, p.n_batch, true);
    if (rc) {
        session_close(&s);
        free(text);
        return rc;
    }
    loft_ppl_result res;
    loft_status st;
    double t0 = session_now_ms();
    loft_code c = loft_perplexity_text(s.model, s.vocab, text, len, &p, on_chunk, NULL, &res, &st);
    double ms = session_now_ms() - t0;
    if (c != LOFT_OK) {
        fprintf(stderr, "%sloft perplexity: %s\n", res.n_chunks ? "\n" : "", st.msg);
        rc = c == LOFT_ERR_RANGE ? 2 : 1;
    } else {
        printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", res.ppl, res.ppl_err);
        fprintf(stderr,
                "loft perplexity: %lld tokens, %d chunks of %d, %lld scored, %.2f s (%.1f "
                "tokens/s)\n",
                (long long)res.n_tokens, res.n_chunks, a.n_ctx, (long long)res.n_scored, ms / 1e3,
                ms > 0 ? (double)res.n_chunks * a.n_ctx * 1e3 / ms : 0.0);
    }
    session_close(&s);
    free(text);
    return rc;
}
