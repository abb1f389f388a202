/*
 * suite.h - `loft suite`: the whole published benchmark as one resumable
 * plan. Five stages run in order:
 *
 *   prepare    the quantization ladder (F16 / Q8_0 / Q4_0) of the default
 *              model, made with the quantizer when a file is missing;
 *   inference  per model x quantization x thread count: the published
 *              prompt answered `prompt_runs` times (Peak / Avg / Low
 *              generation t/s, TTFT), then ppN and tgN as `loft bench`
 *              runs them, and the peak RSS of the item;
 *   finetune   LoRA on the training set for each quantization of the
 *              default model (train_run), with its loss curve and speed;
 *   quality    untrained vs fine-tuned answers on the validation split:
 *              label accuracy, cosine (when the embedding model is there)
 *              and Jaccard similarity against the reference answers;
 *   report     OUT/results.json, OUT/report.md and OUT/report.html.
 *
 * Every item writes its result to OUT/state/<item>.json (temporary name,
 * then rename) when it finishes, and every stage a stamp
 * OUT/state/stage-<name>.done; a second run with the same settings loads
 * those and runs only what is missing. A stop request (*stop set, e.g. by
 * SIGINT) abandons or checkpoints the current item and returns LOFT_OK
 * with summary.stopped set.
 */
#ifndef LOFT_SUITE_SUITE_H
#define LOFT_SUITE_SUITE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "loft.h"

#define SUITE_MAX_THREADS 4
#define SUITE_MAX_QUANTS 4
#define SUITE_MAX_EXTRA 4

typedef enum suite_stage {
    SUITE_PREPARE = 0,
    SUITE_INFER,
    SUITE_TUNE,
    SUITE_QUALITY,
    SUITE_REPORT,
    SUITE_N_STAGES
} suite_stage;

/* What the progress callback is told: the stage, the item (1-based over
 * the whole plan), what is happening inside it, and time. */
typedef struct suite_progress {
    suite_stage stage;
    const char *stage_name;
    int item, n_items;  /* position of the item in the whole plan */
    const char *label;  /* "inference SmolLM2 Q8_0, 2 threads" */
    const char *detail; /* "rep 2/3", "step 4/12 loss 2.31"; "" at item start */
    bool done;          /* the item has just finished */
    bool skipped;       /* the item was already done (loaded from its stamp) */
    double elapsed_s;   /* since the run started */
    double eta_s;       /* estimated seconds left; < 0 when unknown */
} suite_progress;

typedef void (*suite_progress_fn)(void *ud, const suite_progress *p);

typedef struct suite_opts {
    const char *models_dir;    /* where the models are */
    const char *data_dir;      /* the training data (NULL: none) */
    const char *out_dir;       /* everything the suite writes */
    const char *default_model; /* file name in models_dir: the one quantized and trained */
    const char *extra_models[SUITE_MAX_EXTRA]; /* more file names for inference only */
    int n_extra;
    const char *embed_model; /* file name in models_dir of the bert encoder (cosine); NULL: none */
    const char *quants[SUITE_MAX_QUANTS]; /* the ladder: "F16", "Q8_0", "Q4_0" */
    int n_quants;
    int threads[SUITE_MAX_THREADS]; /* thread counts of the inference rows */
    int n_threads;
    int train_threads; /* threads of fine-tuning and quality */
    bool full;         /* the published sizes (names the mode in the report) */
    /* inference */
    const char *prompt; /* "Tell me a joke about cats" */
    int prompt_runs;    /* timed runs of the prompt, after a warm-up */
    int n_predict;      /* tokens generated per prompt run */
    int n_pp, n_tg;     /* bench test sizes */
    int bench_reps;
    /* fine-tuning (the published hyperparameters unless max_steps > 0) */
    int n_epochs;
    int64_t max_steps; /* > 0: stop each run after this many steps */
    double lr, lr_min;
    int32_t n_ctx;
    int64_t save_every;
    /* quality */
    int eval_limit;     /* > 0: only the first N validation records */
    int eval_n_predict; /* tokens generated per answer */
    /* control */
    volatile sig_atomic_t *stop;
    int stop_after_items; /* > 0: request a stop after this many items ran (tests) */
    const char *command;  /* the command line, for the report */
    suite_progress_fn progress;
    void *progress_ud;
} suite_opts;

typedef struct suite_summary {
    bool stopped;       /* ended early by a stop request */
    int n_items;        /* items in the plan */
    int n_run;          /* items run by this call */
    int n_loaded;       /* items already done before this call */
    int n_failed;       /* items that failed (recorded in the report) */
    double seconds;     /* wall time of this call */
    char headline[512]; /* a few figures for the terminal */
} suite_summary;

/* Fills o with the --quick (full = false) or --full settings; paths stay
 * NULL except models_dir "models" and out_dir "suite-out". */
void suite_opts_default(suite_opts *o, bool full);

/* Runs the plan of o (see above). Fails on bad options or when OUT holds a
 * run made with other settings (st says which file); a failing item does
 * not fail the run: it is recorded and reported. */
loft_code suite_run(const suite_opts *o, suite_summary *sum, loft_status *st);

/* The name of a stage: "prepare", "inference", "finetune", "quality", "report". */
const char *suite_stage_name(suite_stage s);

#endif
