/*
 * metrics.h - the scores of `loft eval` and `loft judge`: label accuracy with
 * label normalisation, per-class precision / recall, confusion matrix,
 * Jaccard similarity of word sets, cosine similarity of embeddings, and the
 * judge's order-swap rule.
 *
 * Label normalisation (the rule of the published biomedical reports): the
 * answer is lowercased, leading white space, punctuation and markup (*, #,
 * quotes, ...) are skipped, as is a leading "a:" or "answer:" (the training
 * text's "A: Yes. ..." form); the first word (letters only) is then compared
 * with the label names and aliases, case-insensitively. The default set is
 * Yes / No / Uncertain with "maybe" an alias of Uncertain.
 */
#ifndef LOFT_EVAL_METRICS_H
#define LOFT_EVAL_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loft.h"

#define EVAL_MAX_LABELS 16
#define EVAL_MAX_ALIASES 32
#define EVAL_LABEL_NAME_MAX 32

/* A label set: names[i] is label i as reported; an alias maps another first
 * word to a label. */
typedef struct eval_labels {
    int n;
    char names[EVAL_MAX_LABELS][EVAL_LABEL_NAME_MAX];
    int n_alias;
    char alias[EVAL_MAX_ALIASES][EVAL_LABEL_NAME_MAX];
    int alias_to[EVAL_MAX_ALIASES];
} eval_labels;

/* Fills l with Yes / No / Uncertain and the alias maybe -> Uncertain. */
void eval_labels_default(eval_labels *l);

/* Parses "Yes,No,Uncertain" with optional aliases "maybe=Uncertain" into l
 * (comma-separated; a name is letters only, at most 31 bytes). Errors name
 * the bad item (LOFT_ERR_ARG). */
loft_code eval_labels_parse(eval_labels *l, const char *spec, loft_status *st);

/* The label of an answer by the normalisation above: its index, or -1 when
 * the first word is none of the names or aliases (or there is no word). */
int eval_label_of(const eval_labels *l, const char *text, size_t len);

/* Counts of a classification run. confusion[t][p]: records whose reference
 * is label t and whose prediction is label p; column n (EVAL_MAX_LABELS
 * wide rows, index l->n) counts predictions that match no label. */
typedef struct eval_confusion {
    int n_labels;
    int64_t confusion[EVAL_MAX_LABELS][EVAL_MAX_LABELS + 1];
    int64_t total;   /* records added */
    int64_t correct; /* prediction == reference */
} eval_confusion;

void eval_confusion_init(eval_confusion *c, int n_labels);

/* Adds one record: truth in [0, n_labels), pred in [-1, n_labels) (-1 = no
 * label). */
void eval_confusion_add(eval_confusion *c, int truth, int pred);

/* correct / total (0 when empty). */
double eval_accuracy(const eval_confusion *c);

/* Precision of label k: correct k / predicted k; recall: correct k / true k.
 * NaN when the denominator is 0 (undefined, written as null in JSON). */
double eval_precision(const eval_confusion *c, int k);
double eval_recall(const eval_confusion *c, int k);

/* Jaccard similarity |A n B| / |A u B| of the word sets of a and b. Words
 * are maximal runs of ASCII letters and digits and bytes >= 0x80, ASCII
 * lowercased; everything else separates. Two texts without words give 1.
 * Returns -1 only when memory runs out. */
double eval_jaccard(const char *a, size_t a_len, const char *b, size_t b_len);

/* Cosine similarity of two n-vectors; 0 when either has norm 0. */
double eval_cosine(const float *a, const float *b, size_t n);

/* The judge's verdicts. */
typedef enum eval_verdict { EVAL_TIE = 0, EVAL_A = 1, EVAL_B = 2 } eval_verdict;

/* Combines the judge's two readings of one question: first with A shown
 * first (v_ab names the winning position: 1 = first, 2 = second, 0 = tie or
 * unreadable), then with the order swapped (v_ba, positions again). A wins
 * only when both readings pick A (first in v_ab, second in v_ba); likewise
 * B; anything else is a tie. */
eval_verdict eval_judge_combine(int v_ab, int v_ba);

/* Reads the judge's reply: skipping leading white space, punctuation and
 * markup and an optional word "answer" or "response", 1 when what follows is
 * "1" or the word "first", 2 for "2" or "second", 0 otherwise (a tie, or an
 * unreadable reply, which counts as a tie). */
int eval_judge_parse(const char *text, size_t len);

#endif
