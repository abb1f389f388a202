#include "bench/results.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "base/status.h"

/* ---- the scalar fields of a row, shared by every format ----------------- */

typedef enum field_kind { F_STR, F_INT, F_U64, F_BOOL } field_kind;

typedef struct field {
    const char *name;
    field_kind kind;
    size_t offset;
    size_t size; /* F_STR: capacity */
} field;

#define FS(n, m)                                                                                   \
    {                                                                                              \
        n, F_STR, offsetof(bench_result, m), sizeof(((bench_result *)0)->m)                        \
    }
#define FI(n, m)                                                                                   \
    {                                                                                              \
        n, F_INT, offsetof(bench_result, m), sizeof(int)                                           \
    }
#define FU(n, m)                                                                                   \
    {                                                                                              \
        n, F_U64, offsetof(bench_result, m), sizeof(uint64_t)                                      \
    }
#define FB(n, m)                                                                                   \
    {                                                                                              \
        n, F_BOOL, offsetof(bench_result, m), sizeof(bool)                                         \
    }

static const field row_fields[] = {
    FS("model_file", model_file),
    FS("model_name", model_name),
    FS("model_type", model_type),
    FS("arch", arch),
    FS("quant", quant),
    FS("model_sha256", sha256),
    FU("model_size", model_size),
    FU("file_size", file_size),
    FU("model_n_params", n_params),
    FS("backend", backend),
    FI("n_threads", n_threads),
    FI("n_batch", n_batch),
    FI("n_ubatch", n_ubatch),
    FI("n_prompt", n_prompt),
    FI("n_gen", n_gen),
    FS("test", test),
    FI("reps", reps),
    FU("peak_rss", peak_rss),
    FU("mem_estimate", mem_estimate),
    FB("oom", oom),
    FU("oom_need", oom_need),
    FU("oom_have", oom_have),
    FS("error", error),
};
#define N_ROW_FIELDS (sizeof row_fields / sizeof row_fields[0])

/* Stats written as avg_ts, stddev_ts, min_ts, max_ts and the same for ttft_ms. */
static const struct {
    const char *suffix;
    size_t offset;
} stat_fields[] = {
    {"avg", offsetof(bench_stats, mean)},
    {"stddev", offsetof(bench_stats, stddev)},
    {"min", offsetof(bench_stats, min)},
    {"max", offsetof(bench_stats, max)},
};

static double stat_get(const bench_stats *s, size_t k)
{
    return *(const double *)((const char *)s + stat_fields[k].offset);
}

bool bench_format_from_name(const char *name, bench_format *out)
{
    static const struct {
        const char *name;
        bench_format fmt;
    } names[] = {{"md", BENCH_FMT_MD},
                 {"json", BENCH_FMT_JSON},
                 {"jsonl", BENCH_FMT_JSONL},
                 {"csv", BENCH_FMT_CSV}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i].name)) {
            *out = names[i].fmt;
            return true;
        }
    return false;
}

void bench_result_finish(bench_result *r)
{
    int n = r->reps < 0 ? 0 : r->reps > BENCH_MAX_REPS ? BENCH_MAX_REPS : r->reps;
    bench_stats_compute(r->samples_ts, (size_t)n, &r->ts);
    bench_stats_compute(r->samples_ttft, (size_t)n, &r->ttft);
}

/* ---- JSON --------------------------------------------------------------- */

static void json_key(FILE *f, const char *k)
{
    json_write_str(f, k, strlen(k));
    fputs(": ", f);
}

static void write_row_json(FILE *f, const sysinfo *si, const bench_result *r)
{
    fputc('{', f);
    for (size_t i = 0; i < N_ROW_FIELDS; i++) {
        const field *fd = &row_fields[i];
        const char *p = (const char *)r + fd->offset;
        if (i) fputs(", ", f);
        json_key(f, fd->name);
        switch (fd->kind) {
        case F_STR:
            json_write_str(f, p, strlen(p));
            break;
        case F_INT:
            fprintf(f, "%d", *(const int *)p);
            break;
        case F_U64:
            fprintf(f, "%llu", (unsigned long long)*(const uint64_t *)p);
            break;
        case F_BOOL:
            fputs(*(const bool *)p ? "true" : "false", f);
            break;
        }
    }
    int n = r->reps < 0 ? 0 : r->reps > BENCH_MAX_REPS ? BENCH_MAX_REPS : r->reps;
    for (int s = 0; s < 2; s++) {
        const double *x = s ? r->samples_ttft : r->samples_ts;
        fprintf(f, ", \"samples_%s\": [", s ? "ttft_ms" : "ts");
        for (int i = 0; i < n; i++) {
            if (i) fputs(", ", f);
            json_write_num(f, x[i]);
        }
        fputc(']', f);
        for (size_t k = 0; k < sizeof stat_fields / sizeof stat_fields[0]; k++) {
            fprintf(f, ", \"%s_%s\": ", stat_fields[k].suffix, s ? "ttft_ms" : "ts");
            json_write_num(f, stat_get(s ? &r->ttft : &r->ts, k));
        }
    }
    if (si) {
        fputs(", \"system\": ", f);
        sysinfo_write_json(f, si);
    }
    fputc('}', f);
}

void bench_write_jsonl_row(FILE *f, const sysinfo *si, const bench_result *r)
{
    write_row_json(f, si, r);
    fputc('\n', f);
}

/* ---- CSV ---------------------------------------------------------------- */

static const char *const csv_sys_cols[] = {"cpu_model", "isa_used",   "threads_online",
                                           "ram_total", "os",         "kernel",
                                           "compiler",  "git_commit", "date"};

static void csv_str(FILE *f, const char *s)
{
    bool quote = strpbrk(s, ",\"\n\r") != NULL;
    if (!quote) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

void bench_write_csv_header(FILE *f)
{
    for (size_t i = 0; i < N_ROW_FIELDS; i++)
        fprintf(f, "%s%s", i ? "," : "", row_fields[i].name);
    for (int s = 0; s < 2; s++)
        for (size_t k = 0; k < sizeof stat_fields / sizeof stat_fields[0]; k++)
            fprintf(f, ",%s_%s", stat_fields[k].suffix, s ? "ttft_ms" : "ts");
    fputs(",samples_ts", f);
    for (size_t i = 0; i < sizeof csv_sys_cols / sizeof csv_sys_cols[0]; i++)
        fprintf(f, ",%s", csv_sys_cols[i]);
    fputc('\n', f);
}

void bench_write_csv_row(FILE *f, const sysinfo *si, const bench_result *r)
{
    for (size_t i = 0; i < N_ROW_FIELDS; i++) {
        const field *fd = &row_fields[i];
        const char *p = (const char *)r + fd->offset;
        if (i) fputc(',', f);
        switch (fd->kind) {
        case F_STR:
            csv_str(f, p);
            break;
        case F_INT:
            fprintf(f, "%d", *(const int *)p);
            break;
        case F_U64:
            fprintf(f, "%llu", (unsigned long long)*(const uint64_t *)p);
            break;
        case F_BOOL:
            fputs(*(const bool *)p ? "true" : "false", f);
            break;
        }
    }
    for (int s = 0; s < 2; s++)
        for (size_t k = 0; k < sizeof stat_fields / sizeof stat_fields[0]; k++)
            fprintf(f, ",%.6g", stat_get(s ? &r->ttft : &r->ts, k));
    /* Samples in one field, ';'-separated, so the column count is fixed. */
    fputc(',', f);
    int n = r->reps < 0 ? 0 : r->reps > BENCH_MAX_REPS ? BENCH_MAX_REPS : r->reps;
    for (int i = 0; i < n; i++)
        fprintf(f, "%s%.6g", i ? ";" : "", r->samples_ts[i]);
    char num[64];
    const char *sys[sizeof csv_sys_cols / sizeof csv_sys_cols[0]] = {0};
    if (si) {
        sys[0] = si->cpu_model;
        sys[1] = si->isa_used;
        snprintf(num, sizeof num, "%d", si->threads);
        sys[2] = num;
        sys[4] = si->os;
        sys[5] = si->kernel;
        sys[6] = si->compiler;
        sys[7] = si->git_commit;
        sys[8] = si->date;
    }
    for (size_t i = 0; i < sizeof csv_sys_cols / sizeof csv_sys_cols[0]; i++) {
        fputc(',', f);
        if (i == 3 && si)
            fprintf(f, "%llu", (unsigned long long)si->ram_total);
        else if (sys[i])
            csv_str(f, sys[i]);
    }
    fputc('\n', f);
}

/* ---- markdown ------------------------------------------------------------ */

void bench_format_ts(const bench_result *r, char *buf, size_t cap)
{
    const double gib = 1024.0 * 1024.0 * 1024.0;
    if (r->oom)
        snprintf(buf, cap, "OOM (needs %.2f GiB, has %.2f GiB)", (double)r->oom_need / gib,
                 (double)r->oom_have / gib);
    else if (r->error[0])
        snprintf(buf, cap, "error");
    else
        snprintf(buf, cap, "%.2f ± %.2f", r->ts.mean, r->ts.stddev);
}

static void write_markdown(FILE *f, const sysinfo *si, const bench_result *rows, size_t n)
{
    fprintf(f, "## loft bench\n\n");
    if (si) {
        sysinfo_write_markdown(f, si);
        fputc('\n', f);
    }
    fprintf(f, "| model | size | params | backend | threads | n_batch | test | t/s | TTFT ms "
               "| peak RSS |\n");
    fprintf(f, "| --- | ---: | ---: | --- | ---: | ---: | --- | ---: | ---: | ---: |\n");
    for (size_t i = 0; i < n; i++) {
        const bench_result *r = &rows[i];
        char ts[96];
        bench_format_ts(r, ts, sizeof ts);
        char ttft[32] = "—", rss[32] = "—";
        if (r->ttft.n) snprintf(ttft, sizeof ttft, "%.1f", r->ttft.mean);
        if (r->peak_rss) snprintf(rss, sizeof rss, "%.0f MiB", (double)r->peak_rss / 1048576.0);
        fprintf(f, "| %s | %.2f MiB | %.2f M | %s | %d | %d | %s | %s | %s | %s |\n",
                r->model_type[0] ? r->model_type : r->model_file, (double)r->model_size / 1048576.0,
                (double)r->n_params / 1e6, r->backend[0] ? r->backend : "CPU", r->n_threads,
                r->n_batch, r->test, ts, ttft, rss);
    }
    for (size_t i = 0; i < n; i++)
        if (rows[i].error[0])
            fprintf(f, "\n%s %s: %s\n", rows[i].model_file, rows[i].test, rows[i].error);
}

void bench_write(FILE *f, bench_format fmt, const sysinfo *si, const bench_result *rows, size_t n)
{
    switch (fmt) {
    case BENCH_FMT_MD:
        write_markdown(f, si, rows, n);
        break;
    case BENCH_FMT_JSON:
        fprintf(f, "{\"loft_bench\": %d, \"system\": ", BENCH_RESULTS_VERSION);
        if (si)
            sysinfo_write_json(f, si);
        else
            fputs("null", f);
        fputs(",\n\"results\": [\n", f);
        for (size_t i = 0; i < n; i++) {
            write_row_json(f, NULL, &rows[i]);
            fputs(i + 1 < n ? ",\n" : "\n", f);
        }
        fputs("]}\n", f);
        break;
    case BENCH_FMT_JSONL:
        for (size_t i = 0; i < n; i++)
            bench_write_jsonl_row(f, si, &rows[i]);
        break;
    case BENCH_FMT_CSV:
        bench_write_csv_header(f);
        for (size_t i = 0; i < n; i++)
            bench_write_csv_row(f, si, &rows[i]);
        break;
    }
}

void bench_write_run_table(FILE *f, const double *gen_ts, const double *ttft_ms,
                           const double *prompt_ts, size_t n, uint64_t peak_rss)
{
    bench_stats g, t, p;
    bench_stats_compute(gen_ts, n, &g);
    bench_stats_compute(ttft_ms, n, &t);
    bench_stats_compute(prompt_ts, n, &p);
    fprintf(
        f, "| runs | Peak t/s | Avg t/s | Low t/s | TTFT ms (min–max) | prompt t/s | peak RSS |\n");
    fprintf(f, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    fprintf(f, "| %zu | %.2f | %.2f | %.2f | %.1f (%.1f–%.1f) | %.2f ± %.2f | %.1f MiB |\n", g.n,
            g.max, g.mean, g.min, t.mean, t.min, t.max, p.mean, p.stddev,
            (double)peak_rss / 1048576.0);
}

/* ---- reading JSON back ------------------------------------------------- */

static void copy_json_str(char *dst, size_t cap, const json_value *v)
{
    size_t n = v->str_len < cap - 1 ? v->str_len : cap - 1;
    memcpy(dst, v->str, n);
    dst[n] = 0;
}

static loft_code read_row(const char *path, size_t idx, const json_value *o, bench_result *r,
                          loft_status *st)
{
    if (o->kind != JSON_OBJECT)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: results[%zu] is not an object", path, idx);
    for (size_t i = 0; i < N_ROW_FIELDS; i++) {
        const field *fd = &row_fields[i];
        const json_value *v = json_get(o, fd->name);
        if (!v || v->kind == JSON_NULL) continue;
        char *p = (char *)r + fd->offset;
        bool ok = true;
        switch (fd->kind) {
        case F_STR:
            if ((ok = v->kind == JSON_STRING)) copy_json_str(p, fd->size, v);
            break;
        case F_INT:
            if ((ok = v->kind == JSON_NUMBER && v->number >= -2147483648.0 &&
                      v->number <= 2147483647.0))
                *(int *)p = (int)v->number;
            break;
        case F_U64:
            if ((ok = v->kind == JSON_NUMBER && v->number >= 0 && v->number < 1.8e19))
                *(uint64_t *)p = (uint64_t)v->number;
            break;
        case F_BOOL:
            if ((ok = v->kind == JSON_BOOL)) *(bool *)p = v->boolean;
            break;
        }
        if (!ok)
            return loft_fail(st, LOFT_ERR_FORMAT, "%s: results[%zu].%s has the wrong type", path,
                             idx, fd->name);
    }
    if (r->reps < 0 || r->reps > BENCH_MAX_REPS)
        return loft_fail(st, LOFT_ERR_FORMAT, "%s: results[%zu].reps %d is outside [0, %d]", path,
                         idx, r->reps, BENCH_MAX_REPS);
    for (int s = 0; s < 2; s++) {
        const char *key = s ? "samples_ttft_ms" : "samples_ts";
        double *x = s ? r->samples_ttft : r->samples_ts;
        const json_value *a = json_get(o, key);
        if (!a) continue;
        if (a->kind != JSON_ARRAY || a->n > BENCH_MAX_REPS)
            return loft_fail(st, LOFT_ERR_FORMAT,
                             "%s: results[%zu].%s is not an array of at most %d numbers", path, idx,
                             key, BENCH_MAX_REPS);
        for (size_t i = 0; i < a->n; i++)
            x[i] = a->items[i].kind == JSON_NUMBER ? a->items[i].number : NAN;
        if ((int)a->n > r->reps) r->reps = (int)a->n;
    }
    bench_result_finish(r);
    return LOFT_OK;
}

static void read_system(const json_value *o, sysinfo *si)
{
    memset(si, 0, sizeof *si);
    if (!o || o->kind != JSON_OBJECT) return;
    static const struct {
        const char *key;
        size_t off, cap;
    } strs[] = {
#define SS(k, m) {k, offsetof(sysinfo, m), sizeof(((sysinfo *)0)->m)}
        SS("cpu_model", cpu_model),
        SS("arch", arch),
        SS("isa", isa),
        SS("isa_used", isa_used),
        SS("os", os),
        SS("kernel", kernel),
        SS("hostname", hostname),
        SS("compiler", compiler),
        SS("cflags", cflags),
        SS("loft_version", version),
        SS("git_commit", git_commit),
        SS("date", date),
#undef SS
    };
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        const json_value *v = json_get(o, strs[i].key);
        if (v && v->kind == JSON_STRING) copy_json_str((char *)si + strs[i].off, strs[i].cap, v);
    }
    const json_value *v;
    if ((v = json_get(o, "cores")) && v->kind == JSON_NUMBER) si->cores = (int)v->number;
    if ((v = json_get(o, "threads")) && v->kind == JSON_NUMBER) si->threads = (int)v->number;
    if ((v = json_get(o, "ram_total")) && v->kind == JSON_NUMBER && v->number >= 0)
        si->ram_total = (uint64_t)v->number;
    if ((v = json_get(o, "ram_available")) && v->kind == JSON_NUMBER && v->number >= 0)
        si->ram_available = (uint64_t)v->number;
}

static char *slurp(const char *path, size_t *len, loft_status *st)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        loft_fail(st, LOFT_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
        if (!nb) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = nb;
        cap *= 2;
    }
    bool err = ferror(f);
    fclose(f);
    if (!buf || err) {
        free(buf);
        loft_fail(st, err ? LOFT_ERR_IO : LOFT_ERR_NOMEM, "%s: cannot read", path);
        return NULL;
    }
    *len = n;
    return buf;
}

loft_code bench_read_json(const char *path, sysinfo *si, bench_result **rows, size_t *n,
                          loft_status *st)
{
    *rows = NULL;
    *n = 0;
    size_t len;
    char *text = slurp(path, &len, st);
    if (!text) return st ? st->code : LOFT_ERR_IO;
    json_doc *doc = NULL;
    loft_code rc = json_parse(&doc, text, len, path, st);
    free(text);
    if (rc != LOFT_OK) return rc;
    const json_value *root = json_doc_root(doc);
    const json_value *res = json_get(root, "results");
    if (!json_get(root, "loft_bench") || !res || res->kind != JSON_ARRAY) {
        json_doc_free(doc);
        return loft_fail(
            st, LOFT_ERR_FORMAT,
            "%s: not a loft bench JSON file (needs \"loft_bench\" and a \"results\" array)", path);
    }
    read_system(json_get(root, "system"), si);
    bench_result *out = calloc(res->n ? res->n : 1, sizeof *out);
    if (!out) {
        json_doc_free(doc);
        return loft_fail(st, LOFT_ERR_NOMEM, "%s: no memory for %zu results", path, res->n);
    }
    for (size_t i = 0; i < res->n; i++) {
        rc = read_row(path, i, &res->items[i], &out[i], st);
        if (rc != LOFT_OK) {
            free(out);
            json_doc_free(doc);
            return rc;
        }
    }
    *rows = out;
    *n = res->n;
    json_doc_free(doc);
    return LOFT_OK;
}
