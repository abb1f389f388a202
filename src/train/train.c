/* train.c - the fine-tuning loop (see train.h). */
#include "train/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/stat.h>
#include <time.h>

#include "base/json.h"
#include "base/rng.h"
#include "base/status.h"
#include "train/adapter.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The example order of an epoch: a function of (seed, epoch) only. */
static void epoch_order(int32_t *order, size_t n, uint64_t seed, int32_t epoch, bool shuffle)
{
    for (size_t i = 0; i < n; i++)
        order[i] = (int32_t)i;
    if (!shuffle) return;
    loft_rng r;
    loft_rng_seed(&r, seed ^ (0x9e3779b97f4a7c15ull * (uint64_t)(epoch + 1)));
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)loft_rng_below(&r, i);
        int32_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}

/* Examples of the step starting at order[pos]: as many as fit in n_batch
 * tokens, at least one. */
static size_t step_count(const train_dataset *d, const int32_t *order, size_t pos, int32_t n_batch)
{
    size_t k = 0;
    int64_t tok = 0;
    while (pos + k < d->n) {
        int32_t n = d->ex[order[pos + k]].n;
        if (k > 0 && tok + n > n_batch) break;
        tok += n;
        k++;
    }
    return k;
}

/* The dropout seed of micro-batch `micro` of optimizer step `step` (0-based),
 * a function of the run's seed and those two only (so a resumed run redraws
 * the same masks); lora_dropout_init mixes it further. */
static uint64_t dropout_seed(uint64_t seed, int64_t step, size_t micro)
{
    return seed ^ (0xd1b54a32d192ed03ull * (uint64_t)(step + 1)) ^
           (0x8cb92ba72f3d8dd7ull * (uint64_t)(micro + 1));
}

int32_t train_ubatch(const train_opts *o, loft_status *st)
{
    if (o->n_ubatch == 0)
        return o->n_batch < TRAIN_DEFAULT_UBATCH ? o->n_batch : TRAIN_DEFAULT_UBATCH;
    if (o->n_ubatch < 1 || o->n_ubatch > o->n_batch) {
        loft_fail(st, LOFT_ERR_ARG,
                  "-ub %d out of range: a micro-batch holds 1 to %d tokens (at most -b, the "
                  "tokens of one optimizer step)",
                  o->n_ubatch, o->n_batch);
        return -1;
    }
    return o->n_ubatch;
}

loft_code train_eval_loss(loft_model *m, lora_set *s, const train_dataset *d, int n_threads,
                          int32_t n_ctx, double *loss, loft_status *st)
{
    *loss = NAN;
    trainer_config cfg = {.max_tokens = n_ctx, .n_threads = n_threads, .exact_matmul = false};
    trainer *tr = NULL;
    loft_code c = trainer_init(&tr, m, s, &cfg, st);
    if (c != LOFT_OK) return c;
    double sum = 0.0;
    int64_t cnt = 0;
    for (size_t i = 0; i < d->n && c == LOFT_OK; i++) {
        if (d->ex[i].n < 2) continue;
        double l;
        int32_t n;
        c = trainer_sequence(tr, d->ex[i].tokens, d->ex[i].mask, d->ex[i].n, false, 0.0f, &l, &n,
                             st);
        sum += l;
        cnt += n;
    }
    trainer_free(tr);
    if (c == LOFT_OK && cnt > 0) *loss = sum / (double)cnt;
    return c;
}

static void log_line(FILE *f, const train_report *r)
{
    if (!f) return;
    fprintf(f, "{\"type\":\"%s\",\"epoch\":%d,\"step\":%lld,\"total_steps\":%lld",
            r->is_eval ? "eval" : "train", r->epoch, (long long)r->step, (long long)r->total_steps);
    if (r->is_eval) {
        fputs(",\"val_loss\":", f);
        json_write_num(f, r->val_loss);
    } else {
        fputs(",\"loss\":", f);
        json_write_num(f, r->loss);
        fputs(",\"lr\":", f);
        json_write_num(f, r->lr);
        fputs(",\"grad_norm\":", f);
        json_write_num(f, r->grad_norm);
        fputs(",\"tokens_per_s\":", f);
        json_write_num(f, r->tokens_per_s);
        fprintf(f, ",\"seqs\":%d,\"tokens\":%d,\"passes\":%d", r->n_seqs, r->n_tokens,
                r->n_ubatches);
    }
    fputs("}\n", f);
    fflush(f);
}

typedef struct run {
    loft_model *m;
    const train_opts *o;
    lora_set lora;
    adamw opt;
    trainer *tr;
    int32_t *order;
    /* the micro-batch being assembled: tokens, mask, segment lengths */
    int32_t *mb_tok, *mb_len;
    uint8_t *mb_mask;
    int32_t ub;        /* most tokens per micro-batch; 0: one example each */
    int32_t mb_tokens; /* capacity of mb_tok, mb_mask and mb_len */
    FILE *log;
    const char *arch;
} run;

static loft_code do_eval(run *R, const train_dataset *val, int32_t epoch, int64_t step,
                         int64_t total, double *val_loss, loft_status *st)
{
    if (!val || val->n == 0) return LOFT_OK;
    double sum = 0.0;
    int64_t cnt = 0;
    for (size_t i = 0; i < val->n; i++) {
        double l;
        int32_t n;
        loft_code c = trainer_sequence(R->tr, val->ex[i].tokens, val->ex[i].mask, val->ex[i].n,
                                       false, 0.0f, &l, &n, st);
        if (c != LOFT_OK) return c;
        sum += l;
        cnt += n;
    }
    *val_loss = cnt ? sum / (double)cnt : NAN;
    train_report r = {.is_eval = true,
                      .epoch = epoch + 1,
                      .n_epochs = R->o->n_epochs,
                      .step = step,
                      .total_steps = total,
                      .val_loss = *val_loss};
    log_line(R->log, &r);
    if (R->o->report) R->o->report(R->o->report_ud, &r);
    return LOFT_OK;
}

/* The backward of the k examples of a step at order[pos], grouped in order
 * into micro-batches of at most R->ub tokens (each example alone when ub is
 * 0; an example longer than ub alone too). Gradients of gw * loss are added
 * to the LoRA set; *loss_sum gets the summed loss, *n_passes the number of
 * micro-batches. */
static loft_code run_step(run *R, const train_dataset *d, size_t pos, size_t k, int64_t step,
                          float gw, double *loss_sum, int32_t *n_passes, loft_status *st)
{
    *loss_sum = 0.0;
    *n_passes = 0;
    for (size_t i = 0; i < k;) {
        int32_t T = 0, ns = 0;
        for (; i < k; i++) {
            const train_example *ex = &d->ex[R->order[pos + i]];
            if (ns > 0 && (int64_t)T + ex->n > R->ub) break;
            if (ex->n < 1 || ex->n > R->o->n_ctx || ex->n > R->mb_tokens - T)
                return loft_fail(st, LOFT_ERR_RANGE, "example %d has %d tokens (the context is %d)",
                                 R->order[pos + i], ex->n, R->o->n_ctx);
            memcpy(R->mb_tok + T, ex->tokens, (size_t)ex->n * sizeof *ex->tokens);
            memcpy(R->mb_mask + T, ex->mask, (size_t)ex->n);
            R->mb_len[ns++] = ex->n;
            T += ex->n;
        }
        double l;
        int32_t n;
        loft_code c = trainer_set_dropout(R->tr, R->o->lora_dropout,
                                          dropout_seed(R->o->seed, step, (size_t)*n_passes), st);
        if (c != LOFT_OK) return c;
        c = trainer_batch(R->tr, R->mb_tok, R->mb_mask, R->mb_len, ns, true, gw, &l, &n, st);
        if (c != LOFT_OK) return c;
        *loss_sum += l;
        (*n_passes)++;
    }
    return LOFT_OK;
}

/* Opens <dir>/train_log.jsonl for appending so that it holds each step
 * once: the lines of steps after keep_upto (what a resumed run will redo, or
 * a previous run's whole log when keep_upto is 0) are dropped first, through
 * a temporary file and a rename. NULL when the log cannot be written (the
 * log is a convenience; training goes on without it). */
static FILE *open_log(const char *dir, int64_t keep_upto)
{
    char path[4200], tmp[4220];
    snprintf(path, sizeof path, "%s/train_log.jsonl", dir);
    FILE *in = fopen(path, "r");
    if (!in) return fopen(path, "a");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *out = fopen(tmp, "w");
    if (!out) {
        fclose(in);
        return NULL;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while (keep_upto > 0 && (n = getline(&line, &cap, in)) > 0) {
        const char *p = strstr(line, "\"step\":");
        if (p && strtoll(p + 7, NULL, 10) <= keep_upto) fwrite(line, 1, (size_t)n, out);
    }
    free(line);
    fclose(in);
    if (fclose(out) != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        return NULL;
    }
    return fopen(path, "a");
}

loft_code train_run(loft_model *m, const train_dataset *train, const train_dataset *val,
                    const train_opts *o, train_result *res, loft_status *st)
{
    memset(res, 0, sizeof *res);
    res->last_val_loss = NAN;
    if (train->n == 0) return loft_fail(st, LOFT_ERR_ARG, "no training examples");
    if (!(o->lora_dropout >= 0.0f && o->lora_dropout < 1.0f))
        return loft_fail(st, LOFT_ERR_ARG, "LoRA dropout %g is outside [0, 1)",
                         (double)o->lora_dropout);
    if (o->n_epochs < 1 || o->n_batch < 1 || o->n_ctx < 2)
        return loft_fail(st, LOFT_ERR_ARG, "epochs %d, batch %d, context %d out of range",
                         o->n_epochs, o->n_batch, o->n_ctx);
    const model_hparams *hp = model_get_hparams(m);
    if ((o->modules >> LORA_OUTPUT) & 1u && hp->tied_output)
        return loft_fail(st, LOFT_ERR_ARG,
                         "--lora-modules output: this model's output matrix is its token "
                         "embedding (tied), which llama.cpp adapters cannot target");
    const int32_t ub = train_ubatch(o, st);
    if (ub < 0) return LOFT_ERR_ARG;
    run R = {.m = m, .o = o, .arch = hp->arch_name, .ub = o->pack ? ub : 0};
    /* Room for a micro-batch: ub tokens, or one example of up to n_ctx. */
    R.mb_tokens = o->pack && ub > o->n_ctx ? ub : o->n_ctx;
    lora_dims dims;
    trainer_lora_dims(m, &dims);
    loft_code c = lora_set_init(&R.lora, &dims, o->modules, o->rank, o->alpha, st);
    if (c != LOFT_OK) return c;
    lora_set_init_peft(&R.lora, o->lora_seed);
    c = adamw_init(&R.opt, R.lora.n_params, o->beta1, o->beta2, o->eps, o->weight_decay, st);
    if (c != LOFT_OK) goto done;
    R.order = malloc(train->n * sizeof *R.order);
    R.mb_tok = malloc((size_t)R.mb_tokens * sizeof *R.mb_tok);
    R.mb_len = malloc((size_t)R.mb_tokens * sizeof *R.mb_len);
    R.mb_mask = malloc((size_t)R.mb_tokens);
    if (!R.order || !R.mb_tok || !R.mb_len || !R.mb_mask) {
        c = loft_fail(st, LOFT_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (o->init_adapter) {
        lora_set base;
        c = adapter_load(&base, o->init_adapter, &dims, hp->arch_name, st);
        if (c != LOFT_OK) goto done;
        c = adapter_copy_into(&R.lora, &base, o->init_adapter, st);
        lora_set_free(&base);
        if (c != LOFT_OK) goto done;
    }

    /* Total steps: the grouping of every epoch's order. */
    int64_t total = 0;
    for (int32_t e = 0; e < o->n_epochs; e++) {
        epoch_order(R.order, train->n, o->seed, e, o->shuffle);
        for (size_t pos = 0; pos < train->n;) {
            pos += step_count(train, R.order, pos, o->n_batch);
            total++;
        }
    }
    if (o->max_steps > 0 && o->max_steps < total) total = o->max_steps;
    const int64_t warmup =
        o->warmup_steps >= 0 ? o->warmup_steps : (int64_t)floor(o->warmup_ratio * (double)total);

    train_state ts = {.seed = o->seed, .n_examples = train->n};
    char *resume = NULL;
    if (o->resume_from) {
        resume = strdup(o->resume_from);
        if (!resume) {
            c = loft_fail(st, LOFT_ERR_NOMEM, "out of memory");
            goto done;
        }
    } else if (o->auto_resume && o->ckpt_dir) {
        c = train_find_checkpoint(o->ckpt_dir, &resume, st);
        if (c != LOFT_OK) goto done;
    }
    if (resume) {
        c = checkpoint_load(resume, &R.lora, &R.opt, &ts, &dims, hp->arch_name, st);
        if (c == LOFT_OK && (ts.seed != o->seed || ts.n_examples != train->n))
            c = loft_fail(st, LOFT_ERR_ARG,
                          "%s: checkpoint was made with seed %llu over %llu examples; this run "
                          "has seed %llu over %zu",
                          resume, (unsigned long long)ts.seed, (unsigned long long)ts.n_examples,
                          (unsigned long long)o->seed, train->n);
        free(resume);
        if (c != LOFT_OK) goto done;
        res->resumed = true;
        res->resumed_step = ts.step;
    }

    trainer_config cfg = {.max_tokens = R.mb_tokens,
                          .max_segment = o->n_ctx,
                          .n_threads = o->n_threads,
                          .exact_matmul = o->exact_matmul,
                          .checkpoint_activations = o->checkpoint_activations};
    c = trainer_init(&R.tr, m, &R.lora, &cfg, st);
    if (c != LOFT_OK) goto done;
    if (o->ckpt_dir) {
        if (mkdir(o->ckpt_dir, 0777) != 0 && errno != EEXIST) {
            c = loft_fail(st, LOFT_ERR_IO, "%s: cannot create: %s", o->ckpt_dir, strerror(errno));
            goto done;
        }
        R.log = open_log(o->ckpt_dir, res->resumed ? ts.step : 0);
    }

    const double t_start = now_s();
    int64_t tokens_run = 0;
    double val_loss = NAN;
    bool stopped = false;
    for (int32_t e = ts.epoch; e < o->n_epochs && ts.step < total && !stopped; e++) {
        epoch_order(R.order, train->n, o->seed, e, o->shuffle);
        size_t pos = e == ts.epoch ? (size_t)ts.pos : 0;
        while (pos < train->n && ts.step < total) {
            const size_t k = step_count(train, R.order, pos, o->n_batch);
            int64_t targets = 0;
            int32_t step_tokens = 0;
            for (size_t i = 0; i < k; i++) {
                targets += train->ex[R.order[pos + i]].n_loss;
                step_tokens += train->ex[R.order[pos + i]].n;
            }
            lora_set_zero_grads(&R.lora);
            double loss_sum = 0.0;
            int32_t passes = 0;
            if (targets > 0) {
                c = run_step(&R, train, pos, k, ts.step, (float)(1.0 / (double)targets), &loss_sum,
                             &passes, st);
                if (c != LOFT_OK) goto done;
            }
            const double gnorm = grad_clip(R.lora.grads, R.lora.n_params, o->grad_clip);
            const double lr = lr_at(o->sched, ts.step, total, warmup, o->lr, o->lr_min);
            adamw_step(&R.opt, R.lora.params, R.lora.grads, (float)lr);
            pos += k;
            ts.step++;
            ts.epoch = e;
            ts.pos = (int64_t)pos;
            if (pos >= train->n) {
                ts.epoch = e + 1;
                ts.pos = 0;
            }
            tokens_run += step_tokens;
            const double el = now_s() - t_start;
            train_report r = {.epoch = e + 1,
                              .n_epochs = o->n_epochs,
                              .step = ts.step,
                              .total_steps = total,
                              .loss = targets ? loss_sum / (double)targets : NAN,
                              .val_loss = val_loss,
                              .lr = lr,
                              .grad_norm = gnorm,
                              .tokens_per_s = el > 0 ? (double)tokens_run / el : 0.0,
                              .n_seqs = (int32_t)k,
                              .n_ubatches = passes,
                              .n_tokens = step_tokens};
            const int64_t done_here = ts.step - res->resumed_step;
            r.eta_s = done_here > 0 ? el / (double)done_here * (double)(total - ts.step) : 0.0;
            res->last_loss = r.loss;
            log_line(R.log, &r);
            if (o->report) o->report(o->report_ud, &r);
            stopped = o->stop && *o->stop;
            const bool epoch_end = pos >= train->n;
            if ((o->eval_steps > 0 && ts.step % o->eval_steps == 0) || epoch_end) {
                c = do_eval(&R, val, e, ts.step, total, &val_loss, st);
                if (c != LOFT_OK) goto done;
                res->last_val_loss = val_loss;
            }
            if (o->ckpt_dir && ((o->save_every > 0 && ts.step % o->save_every == 0) || stopped)) {
                c = checkpoint_save(o->ckpt_dir, &R.lora, &R.opt, &ts, R.order, train->n,
                                    hp->arch_name, st);
                if (c != LOFT_OK) goto done;
            }
            if (stopped) break;
        }
    }
    res->steps = ts.step;
    res->stopped = stopped;
    if (!stopped && o->output_adapter)
        c = adapter_save(&R.lora, hp->arch_name, o->output_adapter, st);
done:
    if (R.log) fclose(R.log);
    trainer_free(R.tr);
    free(R.order);
    free(R.mb_tok);
    free(R.mb_len);
    free(R.mb_mask);
    adamw_free(&R.opt);
    lora_set_free(&R.lora);
    return c;
}
