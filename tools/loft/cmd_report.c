/*
 * cmd_report.c - `loft report [-o OUT.md] [--html OUT.html] FILE.json...`:
 * merges `loft bench -o json` files from any number of machines into the
 * tables of a multi-hardware benchmark (markdown, to stdout by default) and
 * an HTML page with SVG bar charts.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/atomic_file.h"
#include "bench/report.h"
#include "commands.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: loft report [-o OUT.md] [--html OUT.html] RESULTS.json...\n\n"
                 "  RESULTS.json   files written by 'loft bench -o json' (any machines)\n"
                 "  -o FILE        write the markdown tables to FILE (default: stdout)\n"
                 "  --html FILE    also write an HTML page with SVG bar charts\n");
}

/* Writes through a temporary, fsyncs and renames (atomic_file), so a
 * reader never sees half a file and a failed write keeps the old one. */
static int write_file(const char *path, const report *r, bool html)
{
    atomic_file af;
    loft_status st;
    if (atomic_file_open(&af, path, &st) != LOFT_OK) {
        fprintf(stderr, "loft report: %s\n", st.msg);
        return 1;
    }
    if (html)
        report_write_html(af.f, r);
    else
        report_write_markdown(af.f, r);
    if (atomic_file_commit(&af, &st) != LOFT_OK) {
        fprintf(stderr, "loft report: %s\n", st.msg);
        return 1;
    }
    return 0;
}

int cmd_report(int argc, char **argv)
{
    const char *md_out = NULL, *html_out = NULL;
    const char **inputs = calloc((size_t)argc, sizeof *inputs);
    size_t n = 0;
    if (!inputs) return 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            free(inputs);
            return 0;
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--html")) && i + 1 < argc) {
            if (!strcmp(a, "-o"))
                md_out = argv[++i];
            else
                html_out = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "loft report: unknown option or missing value '%s'\n", a);
            free(inputs);
            return 2;
        } else {
            inputs[n++] = a;
        }
    }
    if (!n) {
        usage(stderr);
        free(inputs);
        return 2;
    }
    report r;
    loft_status st = {0};
    if (report_load(&r, inputs, n, &st) != LOFT_OK) {
        fprintf(stderr, "loft report: %s\n", st.msg);
        free(inputs);
        return 1;
    }
    int status = 0;
    if (md_out)
        status |= write_file(md_out, &r, false);
    else
        report_write_markdown(stdout, &r);
    if (html_out) status |= write_file(html_out, &r, true);
    report_free(&r);
    free(inputs);
    return status;
}
