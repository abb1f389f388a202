/*
 * report.h - merging `loft bench -o json` files from any number of machines
 * into the tables of a multi-hardware benchmark: one table per model, one
 * column per device x quantization (x thread count), rows Peak / Avg / Low
 * generation tokens/s (max / mean / min over the repetitions of the tg
 * test), TTFT (ms, the mean time to the first logits of the pp test) and
 * prompt tokens/s; "OOM (needs X GiB, has Y GiB)" where the configuration
 * did not fit. Written as markdown or as an HTML page with SVG bar charts.
 */
#ifndef LOFT_BENCH_REPORT_H
#define LOFT_BENCH_REPORT_H

#include <stddef.h>
#include <stdio.h>

#include "bench/results.h"
#include "bench/sysinfo.h"
#include "loft.h"

typedef struct report_file {
    char path[256];
    sysinfo si;
    bench_result *rows;
    size_t n_rows;
} report_file;

/* One column of a model's table. */
typedef struct report_column {
    char device[160]; /* a short CPU name */
    char quant[16];
    int n_threads;
    const report_file *file;
    const bench_result *tg;  /* generation test (largest n_gen), or NULL */
    const bench_result *pp;  /* prompt test (largest n_prompt), or NULL */
    const bench_result *oom; /* a row that did not fit, or NULL */
} report_column;

typedef struct report_table {
    char model[128];
    report_column *cols;
    size_t n_cols;
} report_table;

typedef struct report {
    report_file *files;
    size_t n_files;
    report_table *tables;
    size_t n_tables;
} report;

/* Reads every path (JSON results) and builds the tables. On failure
 * nothing is kept and st names the file. Free with report_free. */
loft_code report_load(report *r, const char *const *paths, size_t n, loft_status *st);
void report_free(report *r);

/* The text of one cell: row 0 Peak, 1 Avg, 2 Low t/s, 3 TTFT ms, 4 prompt
 * t/s. "—" when the column has no such test, the OOM text when it did not fit. */
void report_cell(const report_column *c, int row, char *buf, size_t cap);

/* Names of the rows, as in the tables. */
const char *report_row_name(int row);
#define REPORT_N_ROWS 5

void report_write_markdown(FILE *f, const report *r);
void report_write_html(FILE *f, const report *r);

#endif
