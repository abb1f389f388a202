#include "bench/bench.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/sha256.h"
#include "base/status.h"
#include "quant/quantize_model.h"
#include "bench/sysinfo.h"
#include "infer/kv.h"
#include "quant/quant.h"

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void copy_gstr(char *dst, size_t cap, gguf_str s)
{
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    memcpy(dst, s.data, n);
    dst[n] = 0;
}

/* The tensor type holding most matrix bytes: the file's quantization when
 * general.file_type is absent. */
static const char *dominant_type(const gguf_file *g)
{
    uint64_t bytes[LOFT_TYPE_COUNT] = {0};
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].type < LOFT_TYPE_COUNT && g->tensors[i].n_dims >= 2)
            bytes[g->tensors[i].type] += g->tensors[i].nbytes;
    uint32_t best = 0;
    for (uint32_t t = 1; t < LOFT_TYPE_COUNT; t++)
        if (bytes[t] > bytes[best]) best = t;
    const loft_type_traits *tr = loft_type_get(best);
    return tr ? tr->name : "?";
}

loft_code bench_describe_model(const gguf_file *g, const char *path, bool hash, bench_result *r,
                               loft_status *st)
{
    snprintf(r->model_file, sizeof r->model_file, "%s", path);
    gguf_str s;
    if (gguf_get_str(g, "general.name", &s) && s.len)
        copy_gstr(r->model_name, sizeof r->model_name, s);
    else {
        const char *base = strrchr(path, '/');
        snprintf(r->model_name, sizeof r->model_name, "%s", base ? base + 1 : path);
    }
    if (gguf_get_str(g, "general.architecture", &s))
        copy_gstr(r->arch, sizeof r->arch, s);
    else
        snprintf(r->arch, sizeof r->arch, "unknown");
    uint64_t ft;
    const char *q =
        gguf_get_uint(g, "general.file_type", &ft) ? quantize_ftype_name((uint32_t)ft) : NULL;
    snprintf(r->quant, sizeof r->quant, "%s", q ? q : dominant_type(g));
    r->model_size = 0;
    r->n_params = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const gguf_tensor_info *t = &g->tensors[i];
        uint64_t n = 1;
        for (uint32_t d = 0; d < t->n_dims && d < GGUF_MAX_DIMS; d++)
            n *= (uint64_t)t->ne[d];
        r->n_params += n;
        r->model_size += t->nbytes;
    }
    r->file_size = g->file_size;
    char size_label[32];
    if (r->n_params >= 1000000000ull)
        snprintf(size_label, sizeof size_label, "%.1fB", (double)r->n_params / 1e9);
    else
        snprintf(size_label, sizeof size_label, "%.0fM", (double)r->n_params / 1e6);
    snprintf(r->model_type, sizeof r->model_type, "%.31s %s %s", r->arch, size_label, r->quant);
    snprintf(r->backend, sizeof r->backend, "CPU");
    r->sha256[0] = 0;
    if (hash) return sha256_file_hex(path, r->sha256, st);
    return LOFT_OK;
}

void bench_set_test(bench_result *r, const bench_test *t, int reps)
{
    r->n_prompt = t->n_prompt;
    r->n_gen = t->n_gen;
    r->n_threads = t->n_threads;
    r->n_batch = t->n_batch;
    r->n_ubatch = t->n_ubatch;
    r->reps = reps;
    if (t->n_prompt && t->n_gen)
        snprintf(r->test, sizeof r->test, "pp%d+tg%d", t->n_prompt, t->n_gen);
    else if (t->n_prompt)
        snprintf(r->test, sizeof r->test, "pp%d", t->n_prompt);
    else
        snprintf(r->test, sizeof r->test, "tg%d", t->n_gen);
}

/* xorshift64: a fixed token sequence without touching the global rand(). */
static int32_t next_token(uint64_t *s, int32_t n_vocab)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (int32_t)(*s % (uint64_t)n_vocab);
}

/* One repetition: returns seconds in *secs and the time to the first
 * logits in *ttft (seconds). */
static loft_code run_once(loft_model *m, kv_cache *kv, const bench_test *t, int32_t *toks,
                          float *logits, double *secs, double *ttft, loft_status *st)
{
    const model_hparams *hp = model_get_hparams(m);
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < t->n_prompt + t->n_gen; i++)
        toks[i] = next_token(&seed, hp->n_vocab);
    kv_cache_clear(kv);
    double t0 = bench_now();
    *ttft = -1;
    int batch = t->n_batch > 0 ? t->n_batch : t->n_prompt;
    for (int off = 0; off < t->n_prompt; off += batch) {
        int n = t->n_prompt - off < batch ? t->n_prompt - off : batch;
        loft_code rc = model_forward(m, kv, toks + off, n, logits, false, st);
        if (rc != LOFT_OK) return rc;
    }
    if (t->n_prompt) *ttft = bench_now() - t0;
    for (int i = 0; i < t->n_gen; i++) {
        loft_code rc = model_forward(m, kv, toks + t->n_prompt + i, 1, logits, false, st);
        if (rc != LOFT_OK) return rc;
        if (*ttft < 0) *ttft = bench_now() - t0;
    }
    *secs = bench_now() - t0;
    return LOFT_OK;
}

loft_code bench_run_test(loft_model *m, const bench_test *t, int reps, bool warmup,
                         bench_progress_fn progress, void *ctx, bench_result *r, loft_status *st)
{
    if (reps < 1 || reps > BENCH_MAX_REPS)
        return loft_fail(st, LOFT_ERR_ARG, "bench: repetitions %d outside [1, %d]", reps,
                         BENCH_MAX_REPS);
    if (t->n_prompt < 0 || t->n_gen < 0 || t->n_prompt + t->n_gen < 1 ||
        t->n_prompt > (1 << 24) - t->n_gen)
        return loft_fail(st, LOFT_ERR_ARG, "bench: test pp%d tg%d has no tokens or too many",
                         t->n_prompt, t->n_gen);
    const model_hparams *hp = model_get_hparams(m);
    int32_t n_ctx = t->n_prompt + t->n_gen;
    /* The row's thread count is the model's for the whole row. */
    loft_code rc = model_set_threads(m, t->n_threads > 0 ? t->n_threads : 0, st);
    if (rc != LOFT_OK) return rc;
    kv_cache *kv = NULL;
    rc = kv_cache_init(&kv, m, n_ctx, st);
    if (rc != LOFT_OK) return rc;
    int32_t *toks = malloc((size_t)n_ctx * sizeof *toks);
    float *logits = malloc((size_t)hp->n_vocab * sizeof *logits);
    if (!toks || !logits) {
        rc = loft_fail(st, LOFT_ERR_NOMEM, "bench: no memory for %d tokens and the logits", n_ctx);
        goto done;
    }
    bench_set_test(r, t, reps);
    double secs, ttft;
    if (warmup) {
        if (progress) progress(ctx, t, 0, reps);
        /* A shorter run touches every weight page and warms the caches. */
        bench_test w = *t;
        if (w.n_prompt > 32) w.n_prompt = 32;
        if (w.n_gen > 1) w.n_gen = 1;
        rc = run_once(m, kv, &w, toks, logits, &secs, &ttft, st);
        if (rc != LOFT_OK) goto done;
    }
    for (int i = 0; i < reps; i++) {
        if (progress) progress(ctx, t, i + 1, reps);
        rc = run_once(m, kv, t, toks, logits, &secs, &ttft, st);
        if (rc != LOFT_OK) goto done;
        r->samples_ts[i] = secs > 0 ? (double)n_ctx / secs : 0.0;
        r->samples_ttft[i] = ttft * 1000.0;
    }
    bench_result_finish(r);
    r->peak_rss = sysinfo_peak_rss();
done:
    free(toks);
    free(logits);
    kv_cache_free(kv);
    return rc;
}
