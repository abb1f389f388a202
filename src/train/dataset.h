/*
 * dataset.h - training examples from a JSONL file.
 *
 * Each line is one JSON object; the first of these shapes that fits is used:
 *   {"messages": [{"role": ..., "content": ...}, ...]}  rendered with the
 *       model's chat template; the assistant turns are the completion;
 *   {"prompt": ..., "completion": ...}                  prompt then completion;
 *   {"text": "Q: ...\nA: ...", "label"|"question": ...} the published
 *       biomedical set: the part after the first "\nA:" is the completion;
 *   {"text": ...}                                       all of it is completion.
 * An example is tokenized segment by segment (prompt pieces and completion
 * pieces separately, BOS first when the model adds one, EOS after the last
 * completion), so the loss mask follows token boundaries exactly: a token is
 * trained when it belongs to a completion segment (every token when
 * assistant_loss_only is false). Examples longer than n_ctx tokens are cut
 * to n_ctx and counted; lines that are not JSON objects or have no usable
 * field are recorded with their line numbers (fatal when strict).
 */
#ifndef LOFT_TRAIN_DATASET_H
#define LOFT_TRAIN_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loft.h"
#include "text/chat.h"
#include "text/vocab.h"

/* One example: n tokens; mask[i] = 1 when token i is a prediction target
 * (the model is trained to predict tokens[i] from tokens[0..i)); mask[0] is
 * always 0. */
typedef struct train_example {
    int32_t *tokens;
    uint8_t *mask;
    int32_t n;
    int32_t n_loss; /* number of mask bits set */
} train_example;

/* A line that was skipped, with why. */
typedef struct dataset_bad_line {
    size_t line; /* 1-based */
    char why[200];
} dataset_bad_line;

typedef struct train_dataset {
    train_example *ex;
    size_t n;
    size_t n_lines;     /* non-empty lines read */
    size_t n_truncated; /* examples cut to n_ctx */
    size_t n_no_loss;   /* examples dropped because no token was trained */
    dataset_bad_line *bad;
    size_t n_bad;
    int64_t n_tokens; /* sum of n */
    int64_t n_loss_tokens;
} train_dataset;

typedef struct dataset_opts {
    int32_t n_ctx;            /* most tokens per example (>= 2) */
    bool assistant_loss_only; /* mask prompts out */
    bool strict;              /* a bad line fails the load */
} dataset_opts;

/* Reads path. tmpl is needed only for "messages" lines (NULL makes them
 * bad lines). On LOFT_OK *out owns its examples (dataset_free); on failure
 * *out is empty and st names the file and line. */
loft_code dataset_load(train_dataset *out, const char *path, const loft_vocab *v,
                       const loft_chat_template *tmpl, const dataset_opts *o, loft_status *st);

/* Tokenizes one JSON object text (len bytes) into *ex as dataset_load
 * would; LOFT_ERR_FORMAT when the line is not usable. *truncated is set when
 * the example was cut. For tests and single examples. */
loft_code dataset_example_from_json(train_example *ex, bool *truncated, const char *line,
                                    size_t len, const loft_vocab *v, const loft_chat_template *tmpl,
                                    const dataset_opts *o, loft_status *st);

void train_example_free(train_example *ex);

/* Frees everything; *d is left empty. */
void dataset_free(train_dataset *d);

/* Moves the last `count` examples of d into *val (a validation split); the
 * order of d is the file order, so callers shuffle first if they want. */
loft_code dataset_split_tail(train_dataset *d, train_dataset *val, size_t count, loft_status *st);

#endif
