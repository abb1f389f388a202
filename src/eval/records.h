/*
 * records.h - the records of an evaluation set, read from a JSONL file (one
 * JSON object per non-empty line).
 *
 * Fields (names configurable through eval_fields; defaults in brackets):
 *   question ["question"]  the prompt given to the model;
 *   answer   ["answer"]    the reference answer; when absent and the record
 *                          has "text" of the form "Q: ...\nA: <answer>" (the
 *                          published biomedical set), the part after the
 *                          first "\nA:" is used, leading spaces removed;
 *   label    ["label"]     the reference class (a string);
 *   choices  ["choices"]   an array of candidate strings (choice task); the
 *                          reference is then "answer" as an index or as one
 *                          of the strings, or the label.
 * A record that lacks a field the caller needs fails the load with
 * LOFT_ERR_FORMAT naming the file, the line and the field.
 */
#ifndef LOFT_EVAL_RECORDS_H
#define LOFT_EVAL_RECORDS_H

#include <stddef.h>

#include "loft.h"

typedef struct eval_fields {
    const char *question, *answer, *label, *choices;
} eval_fields;

enum {
    EVAL_NEED_QUESTION = 1,
    EVAL_NEED_ANSWER = 2,
    EVAL_NEED_LABEL = 4,
    EVAL_NEED_CHOICES = 8,
};

typedef struct eval_record {
    size_t line;    /* 1-based line in the file */
    char *question; /* NULL when absent */
    char *answer;   /* NULL when absent */
    char *label;    /* NULL when absent */
    char **choices; /* n_choices strings, or NULL */
    size_t n_choices;
    int answer_index; /* choices: index of the reference, -1 when unknown */
} eval_record;

typedef struct eval_records {
    eval_record *r;
    size_t n;
} eval_records;

/* The default field names above. */
void eval_fields_default(eval_fields *f);

/* Reads path. need: EVAL_NEED_* bits for fields every record must have.
 * With EVAL_NEED_CHOICES the reference must resolve to a choice. A file
 * without records fails too. On LOFT_OK *out owns everything
 * (eval_records_free); on failure *out is empty. */
loft_code eval_records_load(eval_records *out, const char *path, const eval_fields *f,
                            unsigned need, loft_status *st);

void eval_records_free(eval_records *rs);

#endif
