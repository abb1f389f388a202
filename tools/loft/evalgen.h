/*
 * evalgen.h - what `loft eval` and `loft judge` need from a session
 * (session.h) beyond `loft run`: building a question's prompt, greedy
 * generation into a string (nothing printed), and the log-likelihood of a
 * continuation. Functions print "loft CMD: ..." on error and return a
 * process exit status (0 ok, 1 runtime failure, 2 usage error).
 */
#ifndef LOFT_TOOL_EVALGEN_H
#define LOFT_TOOL_EVALGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session.h"

/* How a question becomes a prompt: EVALGEN_CHAT renders one user turn (after
 * the system prompt, when given) with the model's chat template and opens
 * the assistant's turn; EVALGEN_QA writes "Q: <question>\nA:", the layout of
 * the published biomedical training text. */
typedef enum evalgen_format { EVALGEN_CHAT = 0, EVALGEN_QA = 1 } evalgen_format;

/* Tokens of the prompt for question q (BOS as the model adds it). On 0
 * *toks is malloc'd. */
int evalgen_prompt(session *s, evalgen_format fmt, const char *system, const char *q,
                   int32_t **toks, size_t *n);

/* Greedy continuation of prompt[0..n) for at most n_predict tokens (stops at
 * an end-of-generation token or a full context). *out: malloc'd text with
 * leading and trailing white space removed; *n_gen: tokens generated. */
int evalgen_greedy(session *s, const int32_t *prompt, size_t n, int32_t n_predict, char **out,
                   int32_t *n_gen);

/* Sum over the tokens of cont (tokenized without specials) of
 * log p(token | prompt, earlier tokens of cont) into *ll; *n_cont: its
 * token count (0 when cont tokenizes to nothing: *ll = 0). */
int evalgen_loglik(session *s, const int32_t *prompt, size_t n, const char *cont, double *ll,
                   size_t *n_cont);

/* One string option of a command: "--name VALUE" stores VALUE in *dst. */
typedef struct evalgen_flag {
    const char *name;
    const char **dst;
} evalgen_flag;

/* Splits argv into the command's own options and the shared ones (args.h):
 * each flags[k].name takes the next argument into *flags[k].dst; "--limit N"
 * (N >= 1) goes into *limit; everything else is copied to rest (argv[0]
 * first; rest has room for argc entries). cmd names the command in
 * messages ("eval"). Returns 0, or 2 after printing a usage error. */
int evalgen_split_args(const char *cmd, int argc, char **argv, const evalgen_flag *flags,
                       size_t n_flags, long *limit, char **rest, int *n_rest);

#endif
