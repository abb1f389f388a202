/*
 * results.h - benchmark result rows and their file formats.
 *
 * One bench_result is one configuration (model x test x threads x batch)
 * measured `reps` times. Every output format carries the sysinfo record:
 * markdown (a header list + a llama-bench style table), JSON (one document:
 * {"loft_bench": 1, "system": {...}, "results": [...]}), JSONL (one result
 * per line, each with its "system"), CSV (one row per result, the system
 * fields as columns). bench_read_json reads the JSON form back (what
 * `loft report` merges).
 */
#ifndef LOFT_BENCH_RESULTS_H
#define LOFT_BENCH_RESULTS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "bench/stats.h"
#include "bench/sysinfo.h"
#include "loft.h"

#define BENCH_MAX_REPS 100
#define BENCH_RESULTS_VERSION 1

typedef struct bench_result {
    char model_file[256]; /* as given on the command line */
    char model_name[128]; /* general.name, else the file's base name */
    char model_type[96];  /* "llama 135M Q4_1" as llama-bench prints it */
    char arch[32];
    char quant[16]; /* file type name: "Q4_K_M" */
    char sha256[65];
    uint64_t model_size; /* bytes of tensor data */
    uint64_t file_size;
    uint64_t n_params;
    char backend[16]; /* "CPU" */
    int n_threads, n_batch, n_ubatch;
    int n_prompt, n_gen; /* tokens processed as prompt / generated per rep */
    char test[32];       /* "pp512", "tg128", "pp512+tg128" */
    int reps;
    double samples_ts[BENCH_MAX_REPS];   /* tokens/s of each rep */
    double samples_ttft[BENCH_MAX_REPS]; /* ms until the first logits of each rep */
    bench_stats ts;                      /* of samples_ts */
    bench_stats ttft;                    /* of samples_ttft */
    uint64_t peak_rss;                   /* bytes, after the row */
    uint64_t mem_estimate;               /* bytes, memfit's estimate for the row */
    bool oom;                            /* refused: did not fit */
    uint64_t oom_need, oom_have;
    char error[256]; /* non-empty when the row failed for another reason */
} bench_result;

typedef enum bench_format {
    BENCH_FMT_MD,
    BENCH_FMT_JSON,
    BENCH_FMT_JSONL,
    BENCH_FMT_CSV,
} bench_format;

/* "md", "json", "jsonl", "csv" -> format; false when unknown. */
bool bench_format_from_name(const char *name, bench_format *out);

/* Recomputes r->ts and r->ttft from the samples. */
void bench_result_finish(bench_result *r);

/* Writes rows in the format (JSON and markdown: whole document; JSONL and
 * CSV: the CSV header first). */
void bench_write(FILE *f, bench_format fmt, const sysinfo *si, const bench_result *rows, size_t n);

/* One JSONL line / CSV line for a row (for streaming while a bench runs). */
void bench_write_jsonl_row(FILE *f, const sysinfo *si, const bench_result *r);
void bench_write_csv_header(FILE *f);
void bench_write_csv_row(FILE *f, const sysinfo *si, const bench_result *r);

/* Formats "12.34 ± 0.56" (or "OOM (needs ..)" / "error") for a row's t/s. */
void bench_format_ts(const bench_result *r, char *buf, size_t cap);

/* The table `loft run --bench N` prints after its N runs: Peak / Avg / Low
 * generation tokens/s (max / mean / min over the runs), TTFT in ms (mean,
 * with min and max), prompt tokens/s (mean ± stddev) and the peak RSS.
 * Each array has n entries, one per run. */
void bench_write_run_table(FILE *f, const double *gen_ts, const double *ttft_ms,
                           const double *prompt_ts, size_t n, uint64_t peak_rss);

/* Reads a JSON results document (bench_write with BENCH_FMT_JSON). *rows is
 * malloc'd (free it); unknown fields are ignored, missing ones stay 0.
 * Fails with LOFT_ERR_FORMAT naming the file and the field. */
loft_code bench_read_json(const char *path, sysinfo *si, bench_result **rows, size_t *n,
                          loft_status *st);

#endif
