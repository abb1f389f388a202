/*
 * suite_impl.h - what the files of src/suite/ share: the plan's items, the
 * results gathered so far, and the functions of each stage.
 */
#ifndef LOFT_SUITE_IMPL_H
#define LOFT_SUITE_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/status.h"
#include "bench/results.h"
#include "bench/sysinfo.h"
#include "suite/suite.h"

#define SUITE_PATH_MAX 1024
#define SUITE_MAX_MODELS (SUITE_MAX_QUANTS + SUITE_MAX_EXTRA + 1)

/* A model of the plan: a file and where it came from. */
typedef struct suite_model {
    char path[SUITE_PATH_MAX];
    char quant[16]; /* the ladder's name ("Q8_0"), or the file's type for extras */
    bool ladder;    /* one of the default model's quantizations (trained, evaluated) */
    bool made;      /* made by the prepare stage */
} suite_model;

typedef struct suite_item {
    suite_stage stage;
    char id[96];     /* file name stem of its stamp: "infer-2-t2" */
    char label[160]; /* for progress and errors */
    int model;       /* index into the plan's models */
    int threads;
    bool tuned;  /* quality: with the fine-tuned adapter */
    double cost; /* a-priori seconds, for the ETA */
} suite_item;

/* The result of one prepare item. */
typedef struct suite_prep_result {
    char quant[16];
    char path[SUITE_PATH_MAX];
    bool made; /* false: the file was there already */
    double seconds;
    uint64_t bytes;
} suite_prep_result;

typedef struct suite_tune_result {
    char quant[16];
    char model_file[SUITE_PATH_MAX];
    char adapter[SUITE_PATH_MAX];
    char error[256];
    int64_t steps;        /* optimizer steps done */
    int64_t epoch_tokens; /* tokens in one epoch of the training set */
    int64_t n_examples;
    int32_t n_epochs;     /* epochs the run was planned for */
    bool complete_epochs; /* ran all its epochs (else max_steps cut it) */
    double tokens_per_s;  /* training tokens run per second */
    double s_per_step;    /* wall seconds per optimizer step */
    double s_per_epoch;   /* see epoch_measured */
    bool epoch_measured;  /* false: epoch_tokens / tokens_per_s */
    double seconds;       /* wall time of the run (this process) */
    double val_loss;      /* NaN when not measured */
    double *loss;         /* loss of step i+1, n_loss entries (malloc'd) */
    size_t n_loss;
} suite_tune_result;

typedef struct suite_quality_result {
    char quant[16];
    bool tuned;
    char error[256];
    int64_t n, correct;
    double accuracy;
    double cosine; /* NaN without the embedding model */
    double jaccard;
    double seconds;
    int64_t predicted[4]; /* answers labelled Yes, No, Uncertain, none of them */
} suite_quality_result;

/* Everything the report is made of. */
typedef struct suite_results {
    sysinfo si;
    bench_result *rows; /* inference rows: "prompt", ppN, tgN per item */
    size_t n_rows;
    suite_prep_result prep[SUITE_MAX_QUANTS];
    int n_prep;
    suite_tune_result tune[SUITE_MAX_QUANTS];
    int n_tune;
    suite_quality_result qual[2 * SUITE_MAX_QUANTS];
    int n_qual;
    char skipped[SUITE_N_STAGES][256]; /* why a stage did not run ("" when it did) */
    char default_name[128];            /* the default model's name */
    char train_file[SUITE_PATH_MAX], val_file[SUITE_PATH_MAX], embed_file[SUITE_PATH_MAX];
    int64_t n_val_records; /* records in the validation split */
} suite_results;

/* The run's shared state. */
typedef struct suite_ctx {
    const suite_opts *o;
    suite_results *res;
    suite_model models[SUITE_MAX_MODELS];
    int n_models;
    char state_dir[SUITE_PATH_MAX];
    double t_start;
    /* progress */
    const suite_item *cur;
    int cur_index, n_items;
    double cost_done, cost_total, secs_done; /* items run this call */
    double item_t0, item_frac;
} suite_ctx;

/* ---- plan.c ---- */
/* Reports progress inside the current item: frac of it is done. */
void suite_detail(suite_ctx *c, double frac, const char *fmt, ...) LOFT_PRINTF(3, 4);
/* True when the run should stop now. */
bool suite_should_stop(const suite_ctx *c);
/* Writes text to path through path.tmp + rename. */
loft_code suite_write_atomic(const char *path, const char *text, size_t len, loft_status *st);
/* Reads a whole file (malloc'd, NUL-terminated). */
loft_code suite_read_file(const char *path, char **out, size_t *len, loft_status *st);
/* Resets the peak-RSS high-water mark of this process (Linux), and reads it. */
void suite_rss_reset(void);
uint64_t suite_rss_peak(void);
double suite_now(void);

/* ---- stages (infer.c, tune.c) ----
 * Each runs one item and adds its result to c->res. LOFT_OK with the
 * result's error set means the item failed in a way the report shows;
 * *stopped means it was abandoned (nothing recorded, no stamp). */
loft_code suite_prepare_item(suite_ctx *c, const suite_item *it, bool *stopped, loft_status *st);
loft_code suite_infer_item(suite_ctx *c, const suite_item *it, bool *stopped, loft_status *st);
loft_code suite_tune_item(suite_ctx *c, const suite_item *it, bool *stopped, loft_status *st);
loft_code suite_quality_item(suite_ctx *c, const suite_item *it, bool *stopped, loft_status *st);

/* The records a quality item evaluates (indices into rs, at most limit,
 * all when limit <= 0): a label-balanced subset, round-robin over the
 * labels in file order. pick has room for rs->n; returns how many. */
struct eval_records;
struct eval_labels;
size_t suite_pick_records(const struct eval_records *rs, const struct eval_labels *l, int limit,
                          size_t *pick);

/* ---- results.c: one item's result as the JSON of its stamp ---- */
/* Writes the result the item added last to c->res into the stamp path. */
loft_code suite_item_save(suite_ctx *c, const suite_item *it, const char *path, loft_status *st);
/* Loads a stamp written by suite_item_save into c->res. */
loft_code suite_item_load(suite_ctx *c, const suite_item *it, const char *path, loft_status *st);
/* OUT/results.json: the bench document `loft report` reads plus "suite". */
loft_code suite_write_results(const suite_ctx *c, const char *path, loft_status *st);
void suite_results_free(suite_results *r);
/* Appends a row to r->rows. */
loft_code suite_add_row(suite_results *r, const bench_result *row, loft_status *st);

/* ---- tables.c: the report's tables, shared by markdown and HTML ---- */
#define GRID_MAX_ROWS 12
#define GRID_MAX_COLS 16
#define GRID_CELL 96
typedef struct suite_grid {
    char title[160];
    int n_rows, n_cols;
    char corner[48];
    char head[GRID_MAX_COLS][GRID_CELL];
    char rowname[GRID_MAX_ROWS][48];
    char cell[GRID_MAX_ROWS][GRID_MAX_COLS][GRID_CELL];
    char note[512];
} suite_grid;
/* Distinct model names of the inference rows, in order; returns how many. */
int suite_infer_models(const suite_results *r, const char **names, int cap);
/* Inference table of one model: a column per quantization x threads. */
void suite_grid_inference(const suite_ctx *c, const char *model, suite_grid *g);
/* Fine-tuning losses, accuracy (untrained vs fine-tuned), completion time. */
void suite_grid_tune(const suite_ctx *c, suite_grid *g);
void suite_grid_quality(const suite_ctx *c, suite_grid *g);
void suite_grid_time(const suite_ctx *c, suite_grid *g);
/* The "Key findings" bullets computed from the numbers (one per line). */
void suite_findings(const suite_ctx *c, FILE *f, const char *bullet, const char *end);

/* ---- report_md.c / report_html.c ---- */
void suite_write_report_md(FILE *f, const suite_ctx *c);
void suite_write_report_html(FILE *f, const suite_ctx *c);
/* The configuration bullets of the report ("- Mode: ...", one per line). */
void suite_write_config(FILE *f, const suite_ctx *c);
/* The exact commands each stage's work corresponds to, one per line. */
void suite_write_commands(FILE *f, const suite_ctx *c, const char *prefix, const char *suffix);
/* A short display name of a model ("SmolLM2 135M Instruct"). */
const char *suite_row_model(const bench_result *r);

#endif
