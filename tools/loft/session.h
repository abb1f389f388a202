/*
 * session.h - what `loft run` and `loft chat` share: a loaded model, its
 * tokenizer, chat template, KV cache and sampler, the tokens now in the
 * cache, and a generation loop that streams text to stdout.
 *
 * Errors are printed here as one line "loft CMD: ..." on stderr; functions
 * return a process exit status (0 ok, 1 runtime failure, 2 usage error).
 */
#ifndef LOFT_TOOL_SESSION_H
#define LOFT_TOOL_SESSION_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "args.h"
#include "infer/kv.h"
#include "infer/sample.h"
#include "model/model.h"
#include "text/chat.h"
#include "text/vocab.h"
#include "train/adapter.h"

typedef struct session {
    const loft_args *args;
    loft_model *model;
    loft_vocab *vocab;
    kv_cache *kv;
    loft_sampler *sampler;
    loft_chat_template tmpl;
    int32_t n_ctx;
    int32_t n_vocab;
    int32_t n_keep;  /* tokens a context shift keeps at the front */
    float *logits;   /* n_vocab: the logits after the last evaluated token */
    int32_t *tokens; /* the n_tokens tokens now in the cache, in order */
    size_t n_tokens;
    /* Timings (milliseconds) and counts for the report. */
    double t_load_ms, t_prompt_ms, t_gen_ms, t_first_token_ms;
    int64_t n_prompt_eval, n_gen;
    int64_t n_shifts;
    lora_stack lora; /* adapters from --lora / --lora-scaled */
    bool quiet;      /* session_generate writes nothing to stdout (timed bench runs) */
} session;

/* Loads model and tokenizer, makes the cache (args->n_ctx) and the sampler,
 * and when want_template resolves the chat template (--chat-template or the
 * model's). Returns 0 or an exit status after printing the error. */
int session_open(session *s, const loft_args *a, bool want_template);
void session_close(session *s);

/* Refuses, before anything is allocated for it, a pass over s's model with
 * n_ctx positions and n_batch tokens per call (all_logits: logits for every
 * position of a batch, as perplexity keeps them) that the estimate says
 * does not fit in --mem-limit or the RAM available. Returns 0, or 1 after
 * printing one line "loft CMD: MODEL with -c N -b B does not fit in memory:
 * OOM (needs X GiB, has Y GiB)". */
int session_check_fit(const session *s, int32_t n_ctx, int32_t n_batch, bool all_logits);

/* The same for fine-tuning: cmd names the command in the message, g is the
 * model's file, tc the run's shape. Returns 0, or 1 after printing the line
 * (with -c and --lora-rank). */
struct memfit_train_config;
int session_check_train_fit(const char *cmd, const gguf_file *g,
                            const struct memfit_train_config *tc, uint64_t mem_limit);

/* Tokenizes text (special tokens added as the model says when add_special;
 * special-token text parsed). Returns 0 or an exit status. */
int session_tokenize(session *s, const char *text, size_t len, bool add_special, int32_t **out,
                     size_t *n_out);

/* Makes the cache hold exactly toks[0..n): keeps the longest common prefix
 * with what it holds, evaluates the rest in batches of -b tokens and leaves
 * the logits of the last one in s->logits. n must be in [1, n_ctx].
 * Counts as prompt evaluation in the timings. Returns 0 or an exit status. */
int session_sync(session *s, const int32_t *toks, size_t n);

/* Samples and streams up to n_predict tokens (< 0: no limit) to stdout,
 * stopping at an end-of-generation token, at a full context (unless
 * --context-shift) or when *stop becomes non-zero. The generated text is
 * appended to *answer (malloc'd, NUL-terminated; may start NULL) when answer
 * is not NULL. Returns 0 or an exit status. */
int session_generate(session *s, int32_t n_predict, volatile sig_atomic_t *stop, char **answer,
                     size_t *answer_len);

/* `loft run --bench`: a warm-up run that shows the answer, then `reps`
 * silent runs of toks[0..n) from an empty cache, then the Peak/Avg/Low
 * table on stdout (tools/loft/run_bench.c). Returns 0 or an exit status. */
int run_bench(session *s, const int32_t *toks, size_t n, int32_t n_predict, int reps,
              volatile sig_atomic_t *stop);

/* Prints prompt/generation speed, time to first token and peak RSS to stderr. */
void session_print_timings(const session *s);

/* Milliseconds on a monotonic clock. */
double session_now_ms(void);

#endif
