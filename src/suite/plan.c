/*
 * plan.c - the suite's plan: models and items from the options, the state
 * folder (stamps, the settings a run was made with), the item loop with
 * its progress and ETA, stop requests, and the final report files.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/atomic_file.h"
#include "base/threadpool.h"
#include "kernels/kernels.h"
#include "suite/suite_impl.h"

static const char *const stage_names[SUITE_N_STAGES] = {"prepare", "inference", "finetune",
                                                        "quality", "report"};

const char *suite_stage_name(suite_stage s)
{
    return s >= 0 && s < SUITE_N_STAGES ? stage_names[s] : "?";
}

void suite_opts_default(suite_opts *o, bool full)
{
    memset(o, 0, sizeof *o);
    o->models_dir = "models";
    o->out_dir = "suite-out";
    o->default_model = "smollm2-135m-instruct-q4_1.gguf";
    o->extra_models[o->n_extra++] = "gemma-3-270m-q4_k_m.gguf";
    o->embed_model = "all-minilm-l6-v2.gguf";
    o->quants[0] = "F16";
    o->quants[1] = "Q8_0";
    o->quants[2] = "Q4_0";
    o->n_quants = 3;
    int cores = threadpool_cpu_count();
    if (cores < 1) cores = 1;
    o->full = full;
    o->train_threads = cores;
    o->prompt = "Tell me a joke about cats";
    o->n_predict = 64;
    o->lr_min = 1e-8;
    o->n_ctx = 128;
    if (full) {
        o->threads[o->n_threads++] = 1;
        if (cores > 1) o->threads[o->n_threads++] = cores;
        o->prompt_runs = 5;
        o->n_pp = 512;
        o->n_tg = 128;
        o->bench_reps = 5;
        o->n_epochs = 8;
        o->lr = 1e-5;
        o->save_every = 50;
        o->eval_n_predict = 32;
    } else {
        /* Sized for about 15 minutes on 2 shared cores. */
        o->threads[o->n_threads++] = cores;
        o->prompt_runs = 3;
        o->n_pp = 128;
        o->n_tg = 32;
        o->bench_reps = 3;
        o->n_epochs = 1;
        o->max_steps = 10;
        o->lr = 1e-3;
        o->eval_limit = 12;
        o->eval_n_predict = 16;
    }
}

double suite_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- files ------------------------------------------------------------------ */

loft_code suite_write_atomic(const char *path, const char *text, size_t len, loft_status *st)
{
    atomic_file af;
    loft_code rc = atomic_file_open(&af, path, st);
    if (rc) return rc;
    if (fwrite(text, 1, len, af.f) != len) {
        atomic_file_abort(&af);
        return loft_fail(st, LOFT_ERR_IO, "%s: cannot write: %s", path, strerror(errno));
    }
    return atomic_file_commit(&af, st);
}

loft_code suite_read_file(const char *path, char **out, size_t *len, loft_status *st)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return loft_fail(st, LOFT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - 1 - n, f);
        if (n < cap - 1) break;
        char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    bool err = ferror(f) != 0;
    fclose(f);
    if (!buf || err) {
        free(buf);
        return loft_fail(st, err ? LOFT_ERR_IO : LOFT_ERR_NOMEM, "%s: cannot read", path);
    }
    buf[n] = 0;
    *out = buf;
    *len = n;
    return LOFT_OK;
}

static bool file_exists(const char *path)
{
    struct stat sb;
    return path && stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static bool dir_exists(const char *path)
{
    struct stat sb;
    return path && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static loft_code make_dir(const char *path, loft_status *st)
{
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return loft_fail(st, LOFT_ERR_IO, "%s: cannot create the folder: %s", path,
                         strerror(errno));
    return LOFT_OK;
}

void suite_rss_reset(void)
{
    /* "5" resets VmHWM (Linux >= 4.0); elsewhere the peak stays cumulative. */
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

uint64_t suite_rss_peak(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    uint64_t kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = strtoull(line + 6, NULL, 10);
    if (f) fclose(f);
    return kb ? kb * 1024 : sysinfo_peak_rss();
}

/* ---- progress ----------------------------------------------------------------- */

static double eta_of(const suite_ctx *c)
{
    double left = c->cost_total - c->cost_done;
    if (c->cur) left -= c->item_frac * c->cur->cost;
    if (left < 0) left = 0;
    /* Calibrate the a-priori costs by what the items run so far took,
     * the current one included once it is under way. */
    double secs = c->secs_done, cost = c->cost_done;
    if (c->cur && c->item_frac > 0.05) {
        secs += suite_now() - c->item_t0;
        cost += c->item_frac * c->cur->cost;
    }
    return cost > 0 && secs > 0 ? left * secs / cost : left;
}

static void tell(suite_ctx *c, const suite_item *it, const char *detail, bool done, bool skipped)
{
    if (!c->o->progress) return;
    suite_progress p = {.stage = it->stage,
                        .stage_name = suite_stage_name(it->stage),
                        .item = c->cur_index + 1,
                        .n_items = c->n_items,
                        .label = it->label,
                        .detail = detail,
                        .done = done,
                        .skipped = skipped,
                        .elapsed_s = suite_now() - c->t_start,
                        .eta_s = eta_of(c)};
    c->o->progress(c->o->progress_ud, &p);
}

void suite_detail(suite_ctx *c, double frac, const char *fmt, ...)
{
    if (!c->cur) return;
    c->item_frac = frac < 0 ? 0 : frac > 1 ? 1 : frac;
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    tell(c, c->cur, buf, false, false);
}

bool suite_should_stop(const suite_ctx *c)
{
    return c->o->stop && *c->o->stop;
}

/* ---- the plan ------------------------------------------------------------------- */

/* "smollm2-135m-instruct-q4_1.gguf" -> "smollm2-135m-instruct": drops the
 * directory, ".gguf" and a trailing quantization tag. */
static void model_stem(const char *file, char *out, size_t cap)
{
    const char *b = strrchr(file, '/');
    b = b ? b + 1 : file;
    snprintf(out, cap, "%s", b);
    char *dot = strstr(out, ".gguf");
    if (dot) *dot = 0;
    char *dash = strrchr(out, '-');
    if (dash &&
        (dash[1] == 'q' || dash[1] == 'Q' || dash[1] == 'f' || dash[1] == 'F' || dash[1] == 'b' ||
         dash[1] == 'B') &&
        dash[2] >= '0' && dash[2] <= '9')
        *dash = 0;
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z') *s = (char)(*s - 'A' + 'a');
}

/* The quantization name of a model file from its name ("...-q4_1.gguf" -> "Q4_1"). */
static void quant_of_file(const char *file, char *out, size_t cap)
{
    const char *dash = strrchr(file, '-');
    snprintf(out, cap, "%s", dash ? dash + 1 : "?");
    char *dot = strstr(out, ".gguf");
    if (dot) *dot = 0;
    for (char *p = out; *p; p++)
        if (*p >= 'a' && *p <= 'z') *p = (char)(*p - 'a' + 'A');
}

static double file_mb(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (double)sb.st_size / 1e6 : 100.0;
}

/* Finds name under dir: dir/biomedical_qa/name, else dir/name. */
static bool find_data(const char *dir, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/biomedical_qa/%s", dir, name);
    if (file_exists(out)) return true;
    snprintf(out, cap, "%s/%s", dir, name);
    return file_exists(out);
}

typedef struct plan {
    suite_item *items;
    int n;
} plan;

static loft_code add_item(plan *p, const suite_item *it, loft_status *st)
{
    suite_item *ni = realloc(p->items, (size_t)(p->n + 1) * sizeof *ni);
    if (!ni) return loft_fail(st, LOFT_ERR_NOMEM, "suite: out of memory for the plan");
    p->items = ni;
    p->items[p->n++] = *it;
    return LOFT_OK;
}

static loft_code build_plan(suite_ctx *c, plan *p, bool have_data, loft_status *st)
{
    const suite_opts *o = c->o;
    char src[SUITE_PATH_MAX], stem[256], src_quant[16];
    snprintf(src, sizeof src, "%s/%s", o->models_dir, o->default_model);
    if (!file_exists(src))
        return loft_fail(st, LOFT_ERR_IO,
                         "%s: the default model is missing (scripts/get-models fetches it)", src);
    model_stem(o->default_model, stem, sizeof stem);
    quant_of_file(o->default_model, src_quant, sizeof src_quant);
    double src_mb = file_mb(src);
    for (int q = 0; q < o->n_quants; q++) {
        suite_model *m = &c->models[c->n_models++];
        memset(m, 0, sizeof *m);
        snprintf(m->quant, sizeof m->quant, "%s", o->quants[q]);
        m->ladder = true;
        if (!strcmp(o->quants[q], src_quant)) {
            snprintf(m->path, sizeof m->path, "%s", src);
            continue;
        }
        char ql[16];
        snprintf(ql, sizeof ql, "%s", o->quants[q]);
        lower(ql);
        snprintf(m->path, sizeof m->path, "%s/models/%s-%s.gguf", o->out_dir, stem, ql);
        m->made = true;
        suite_item it = {.stage = SUITE_PREPARE, .model = c->n_models - 1, .cost = 2 + src_mb / 40};
        snprintf(it.id, sizeof it.id, "prepare-%s", ql);
        snprintf(it.label, sizeof it.label, "quantize %s to %s", o->default_model, o->quants[q]);
        if (add_item(p, &it, st) != LOFT_OK) return st->code;
    }
    for (int e = 0; e < o->n_extra; e++) {
        suite_model *m = &c->models[c->n_models];
        memset(m, 0, sizeof *m);
        snprintf(m->path, sizeof m->path, "%s/%s", o->models_dir, o->extra_models[e]);
        if (!file_exists(m->path)) continue; /* optional: inference rows only when present */
        quant_of_file(o->extra_models[e], m->quant, sizeof m->quant);
        c->n_models++;
    }
    /* Relative speeds of the formats, for the a-priori cost only. */
    for (int mi = 0; mi < c->n_models; mi++) {
        const suite_model *m = &c->models[mi];
        double mb = m->made ? src_mb * (!strcmp(m->quant, "F16")    ? 2.9
                                        : !strcmp(m->quant, "Q8_0") ? 1.5
                                                                    : 0.9)
                            : file_mb(m->path);
        for (int t = 0; t < o->n_threads; t++) {
            suite_item it = {.stage = SUITE_INFER, .model = mi, .threads = o->threads[t]};
            double per = mb / 100.0 / (o->threads[t] > 1 ? 1.4 : 1.0);
            it.cost = per * ((o->prompt_runs + 1) * (o->n_predict / 25.0 + 0.3) +
                             (o->bench_reps + 1) * (o->n_pp / 80.0 + o->n_tg / 25.0));
            snprintf(it.id, sizeof it.id, "infer-%d-t%d", mi, o->threads[t]);
            const char *b = strrchr(m->path, '/');
            snprintf(it.label, sizeof it.label, "inference %s, %d thread%s", b ? b + 1 : m->path,
                     o->threads[t], o->threads[t] > 1 ? "s" : "");
            if (add_item(p, &it, st) != LOFT_OK) return st->code;
        }
    }
    if (!have_data) return LOFT_OK;
    for (int s = SUITE_TUNE; s <= SUITE_QUALITY; s++)
        for (int mi = 0; mi < c->n_models; mi++) {
            if (!c->models[mi].ladder) continue;
            for (int tuned = 0; tuned < (s == SUITE_QUALITY ? 2 : 1); tuned++) {
                suite_item it = {.stage = (suite_stage)s, .model = mi, .tuned = tuned != 0};
                double steps = o->max_steps > 0 ? (double)o->max_steps : 150.0 * o->n_epochs;
                double recs = o->eval_limit > 0 ? o->eval_limit : 33;
                it.cost = s == SUITE_TUNE ? steps * 6.0 : recs * (o->eval_n_predict / 25.0 + 0.5);
                snprintf(it.id, sizeof it.id, "%s-%s%s", s == SUITE_TUNE ? "tune" : "quality",
                         c->models[mi].quant,
                         s == SUITE_TUNE ? ""
                         : tuned         ? "-tuned"
                                         : "-base");
                lower(it.id);
                snprintf(it.label, sizeof it.label, "%s %s base%s",
                         s == SUITE_TUNE ? "fine-tune" : "evaluate", c->models[mi].quant,
                         s == SUITE_TUNE ? ""
                         : tuned         ? " + adapter"
                                         : " (untrained)");
                if (add_item(p, &it, st) != LOFT_OK) return st->code;
            }
        }
    return LOFT_OK;
}

/* The settings that decide what an item measures; a second run must match. */
static void settings_text(const suite_ctx *c, char *buf, size_t cap)
{
    const suite_opts *o = c->o;
    size_t n = (size_t)snprintf(
        buf, cap,
        "{\"mode\": \"%s\", \"default_model\": \"%s\", \"prompt_runs\": %d, \"n_predict\": %d, "
        "\"n_pp\": %d, \"n_tg\": %d, \"reps\": %d, \"epochs\": %d, \"max_steps\": %lld, "
        "\"lr\": %g, \"eval_limit\": %d, \"eval_n_predict\": %d, \"threads\": [",
        o->full ? "full" : "quick", o->default_model, o->prompt_runs, o->n_predict, o->n_pp,
        o->n_tg, o->bench_reps, o->n_epochs, (long long)o->max_steps, o->lr, o->eval_limit,
        o->eval_n_predict);
    for (int t = 0; t < o->n_threads && n < cap; t++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%d", t ? ", " : "", o->threads[t]);
    if (n < cap) snprintf(buf + n, cap - n, "]}\n");
}

static loft_code check_settings(const suite_ctx *c, loft_status *st)
{
    char want[2048], path[SUITE_PATH_MAX + 32];
    settings_text(c, want, sizeof want);
    snprintf(path, sizeof path, "%s/settings.json", c->state_dir);
    if (!file_exists(path)) return suite_write_atomic(path, want, strlen(want), st);
    char *have = NULL;
    size_t len;
    loft_code rc = suite_read_file(path, &have, &len, st);
    if (rc != LOFT_OK) return rc;
    bool same = !strcmp(have, want);
    free(have);
    if (!same)
        return loft_fail(st, LOFT_ERR_ARG,
                         "%s: this folder holds a run made with other settings; use another "
                         "--out, or delete %s to start over",
                         path, c->o->out_dir);
    return LOFT_OK;
}

static void stamp_path(const suite_ctx *c, const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s.json", c->state_dir, id);
}

static void stage_stamp_path(const suite_ctx *c, suite_stage s, char *out, size_t cap)
{
    snprintf(out, cap, "%s/stage-%s.done", c->state_dir, suite_stage_name(s));
}

static loft_code run_item(suite_ctx *c, const suite_item *it, bool *stopped, loft_status *st)
{
    switch (it->stage) {
    case SUITE_PREPARE:
        return suite_prepare_item(c, it, stopped, st);
    case SUITE_INFER:
        return suite_infer_item(c, it, stopped, st);
    case SUITE_TUNE:
        return suite_tune_item(c, it, stopped, st);
    case SUITE_QUALITY:
        return suite_quality_item(c, it, stopped, st);
    default:
        return LOFT_OK;
    }
}

static loft_code write_reports(suite_ctx *c, loft_status *st)
{
    char path[SUITE_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/results.json", c->o->out_dir);
    loft_code rc = suite_write_results(c, path, st);
    for (int k = 0; rc == LOFT_OK && k < 2; k++) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        if (!f) return loft_fail(st, LOFT_ERR_NOMEM, "suite: out of memory for the report");
        if (k == 0)
            suite_write_report_md(f, c);
        else
            suite_write_report_html(f, c);
        fclose(f);
        snprintf(path, sizeof path, "%s/report.%s", c->o->out_dir, k ? "html" : "md");
        rc = suite_write_atomic(path, text, len, st);
        free(text);
    }
    return rc;
}

static void headline(const suite_ctx *c, suite_summary *sum)
{
    const suite_results *r = c->res;
    size_t n = 0, cap = sizeof sum->headline;
    const bench_result *best = NULL;
    for (size_t i = 0; i < r->n_rows; i++)
        if (!strcmp(r->rows[i].test, "prompt") && r->rows[i].ts.n &&
            (!best || r->rows[i].ts.mean > best->ts.mean))
            best = &r->rows[i];
    if (best)
        n += (size_t)snprintf(sum->headline + n, cap - n,
                              "fastest generation: %.2f t/s avg (%s %s, %d threads); ",
                              best->ts.mean, suite_row_model(best), best->quant, best->n_threads);
    for (int i = 0; i < r->n_qual && n < cap; i++)
        if (r->qual[i].tuned && !r->qual[i].error[0])
            n += (size_t)snprintf(sum->headline + n, cap - n, "%s accuracy %.1f%%; ",
                                  r->qual[i].quant, 100 * r->qual[i].accuracy);
    if (n >= 2 && n < cap) sum->headline[n - 2] = 0;
}

loft_code suite_run(const suite_opts *o, suite_summary *sum, loft_status *st)
{
    memset(sum, 0, sizeof *sum);
    if (!o->out_dir || !o->models_dir || !o->default_model || !o->prompt || o->n_quants < 1 ||
        o->n_threads < 1 || o->prompt_runs < 1 || o->prompt_runs > BENCH_MAX_REPS ||
        o->bench_reps < 1 || o->bench_reps > BENCH_MAX_REPS || o->n_predict < 1)
        return loft_fail(st, LOFT_ERR_ARG, "suite: incomplete options");
    suite_results *res = calloc(1, sizeof *res);
    suite_ctx *c = calloc(1, sizeof *c);
    plan p = {0};
    loft_code rc = LOFT_OK;
    if (!res || !c) {
        rc = loft_fail(st, LOFT_ERR_NOMEM, "suite: out of memory");
        goto done;
    }
    c->o = o;
    c->res = res;
    c->t_start = suite_now();
    sysinfo_collect(&res->si);
    snprintf(res->si.isa_used, sizeof res->si.isa_used, "%s", kernels_get()->name);
    char sub[SUITE_PATH_MAX + 16];
    if ((rc = make_dir(o->out_dir, st)) != LOFT_OK) goto done;
    snprintf(c->state_dir, sizeof c->state_dir, "%s/state", o->out_dir);
    if ((rc = make_dir(c->state_dir, st)) != LOFT_OK) goto done;
    static const char *const subs[] = {"models", "adapters", "work"};
    for (int k = 0; k < 3; k++) {
        snprintf(sub, sizeof sub, "%s/%s", o->out_dir, subs[k]);
        if ((rc = make_dir(sub, st)) != LOFT_OK) goto done;
    }

    bool have_data = false;
    if (!o->data_dir)
        snprintf(res->skipped[SUITE_TUNE], sizeof res->skipped[0],
                 "no training data: no --data given and ../shared/data does not exist");
    else if (!dir_exists(o->data_dir))
        snprintf(res->skipped[SUITE_TUNE], sizeof res->skipped[0],
                 "no training data: %.200s is not a folder", o->data_dir);
    else if (!find_data(o->data_dir, "train.jsonl", res->train_file, sizeof res->train_file) ||
             !find_data(o->data_dir, "validation.jsonl", res->val_file, sizeof res->val_file))
        snprintf(res->skipped[SUITE_TUNE], sizeof res->skipped[0],
                 "no training data: %.180s has no biomedical_qa/train.jsonl and validation.jsonl",
                 o->data_dir);
    else
        have_data = true;
    if (!have_data) {
        res->train_file[0] = res->val_file[0] = 0;
        memcpy(res->skipped[SUITE_QUALITY], res->skipped[SUITE_TUNE], sizeof res->skipped[0]);
    }
    if (o->embed_model) {
        snprintf(res->embed_file, sizeof res->embed_file, "%s/%s", o->models_dir, o->embed_model);
        if (!file_exists(res->embed_file)) res->embed_file[0] = 0;
    }
    if ((rc = build_plan(c, &p, have_data, st)) != LOFT_OK) goto done;
    if ((rc = check_settings(c, st)) != LOFT_OK) goto done;
    c->n_items = p.n;
    sum->n_items = p.n;

    /* Items already done are loaded first, so the ETA covers only the rest. */
    bool *done_before = calloc((size_t)p.n + 1, sizeof *done_before);
    if (!done_before) {
        rc = loft_fail(st, LOFT_ERR_NOMEM, "suite: out of memory");
        goto done;
    }
    for (int i = 0; i < p.n; i++) {
        char path[SUITE_PATH_MAX + 128];
        stamp_path(c, p.items[i].id, path, sizeof path);
        done_before[i] = file_exists(path);
        if (!done_before[i]) c->cost_total += p.items[i].cost;
    }
    for (int i = 0; i < p.n && rc == LOFT_OK; i++) {
        const suite_item *it = &p.items[i];
        char path[SUITE_PATH_MAX + 128];
        stamp_path(c, it->id, path, sizeof path);
        c->cur_index = i;
        if (done_before[i]) {
            rc = suite_item_load(c, it, path, st);
            if (rc != LOFT_OK) break;
            sum->n_loaded++;
            tell(c, it, "", true, true);
        } else {
            if (suite_should_stop(c)) {
                sum->stopped = true;
                break;
            }
            c->cur = it;
            c->item_frac = 0;
            c->item_t0 = suite_now();
            tell(c, it, "", false, false);
            bool stopped = false;
            rc = run_item(c, it, &stopped, st);
            c->cur = NULL;
            if (rc != LOFT_OK) break;
            if (stopped) {
                sum->stopped = true;
                break;
            }
            if ((rc = suite_item_save(c, it, path, st)) != LOFT_OK) break;
            c->cost_done += it->cost;
            c->secs_done += suite_now() - c->item_t0;
            sum->n_run++;
            tell(c, it, "", true, false);
            if (o->stop_after_items > 0 && sum->n_run >= o->stop_after_items && o->stop)
                *o->stop = 1;
        }
        /* The last item of a stage stamps the stage. */
        if (i + 1 == p.n || p.items[i + 1].stage != it->stage) {
            char sp[SUITE_PATH_MAX + 64];
            stage_stamp_path(c, it->stage, sp, sizeof sp);
            if (!file_exists(sp)) {
                char txt[128];
                int k = snprintf(txt, sizeof txt, "{\"stage\": \"%s\", \"items\": %d}\n",
                                 suite_stage_name(it->stage), i + 1);
                rc = suite_write_atomic(sp, txt, (size_t)k, st);
            }
        }
    }
    free(done_before);
    if (rc != LOFT_OK) goto done;
    /* The report is rewritten from whatever is done, also after a stop. */
    for (int i = 0; i < res->n_tune; i++)
        if (res->tune[i].error[0]) sum->n_failed++;
    for (int i = 0; i < res->n_qual; i++)
        if (res->qual[i].error[0]) sum->n_failed++;
    for (size_t i = 0; i < res->n_rows; i++)
        if (res->rows[i].error[0]) sum->n_failed++;
    if ((rc = write_reports(c, st)) != LOFT_OK) goto done;
    if (!sum->stopped) {
        char sp[SUITE_PATH_MAX + 64];
        stage_stamp_path(c, SUITE_REPORT, sp, sizeof sp);
        rc = suite_write_atomic(sp, "{\"stage\": \"report\"}\n", 20, st);
    }
    headline(c, sum);
done:
    sum->seconds = c ? suite_now() - c->t_start : 0;
    if (res) suite_results_free(res);
    free(res);
    free(c);
    free(p.items);
    return rc;
}
