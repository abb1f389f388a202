/*
 * cmd_suite.c - `loft suite [--models DIR] [--data DIR] [--out DIR]
 * [--quick|--full] [-t LIST]`: the whole published benchmark (inference,
 * fine-tuning, quality, report) as one resumable plan (src/suite/suite.h).
 * One progress display on stderr: a live line on a terminal, a plain line
 * per item otherwise. Ctrl-C (SIGINT/SIGTERM) ends the current item
 * cleanly, keeps what is finished and exits 0 saying how to resume.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "suite/suite.h"

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: loft suite [--models DIR] [--data DIR] [--out DIR] [--quick|--full] "
            "[-t LIST]\n\n"
            "Runs the published benchmark on this machine and writes OUT/report.md,\n"
            "OUT/report.html and OUT/results.json (which 'loft report' merges with other\n"
            "machines' files). Interrupt with Ctrl-C and run the same command again to resume.\n\n"
            "  --models DIR   models folder                          (default: models)\n"
            "  --data DIR     biomedical data folder  (default: ../shared/data when it exists)\n"
            "  --out DIR      output folder                          (default: suite-out)\n"
            "  --quick        small sizes, about 15 minutes on 2 cores (default)\n"
            "  --full         the published sizes: 5 runs, pp512/tg128, 8 epochs, all records\n"
            "  -t LIST        inference thread counts, e.g. 1,4   (default: quick: all cores;\n"
            "                 full: 1 and all cores)\n"
            "  --model FILE   default model file name in --models\n"
            "                 (default: smollm2-135m-instruct-q4_1.gguf)\n"
            "  --extra FILE   another model in --models for inference rows (repeatable;\n"
            "                 default: gemma-3-270m-q4_k_m.gguf when present); 'none' for none\n"
            "  --steps N      fine-tuning steps per base (quick default 10; 0: whole epochs)\n"
            "  --limit N      validation records evaluated (0: all)\n"
            "  --no-progress  no progress display\n"
            "  --stop-after N stop as if interrupted after N items (to try resuming)\n");
}

typedef struct progress_ui {
    bool tty, on;
    int last_len;
    double last_plain;
} progress_ui;

static void fmt_time(double s, char *buf, size_t cap)
{
    if (s < 0)
        snprintf(buf, cap, "?");
    else
        snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
}

static void show(void *ud, const suite_progress *p)
{
    progress_ui *ui = ud;
    if (!ui->on) return;
    char el[32], eta[32];
    fmt_time(p->elapsed_s, el, sizeof el);
    fmt_time(p->eta_s, eta, sizeof eta);
    if (ui->tty) {
        char line[400];
        int n = snprintf(line, sizeof line, "[%s %d/%d] %s%s%s  elapsed %s  ETA %s", p->stage_name,
                         p->item, p->n_items, p->label, p->detail[0] ? ": " : "",
                         p->skipped ? "done before" : p->detail, el, eta);
        if (n > 160) n = 160;
        fprintf(stderr, "\r%.*s%*s", n, line, ui->last_len > n ? ui->last_len - n : 0, "");
        ui->last_len = n;
        if (p->done) {
            fputc('\n', stderr);
            ui->last_len = 0;
        }
    } else if (p->done || !p->detail[0] || p->elapsed_s - ui->last_plain > 30) {
        /* Plain lines: each item's start and end, and a detail twice a minute. */
        fprintf(stderr, "loft suite: [%s %d/%d] %s: %s  (elapsed %s, ETA %s)\n", p->stage_name,
                p->item, p->n_items, p->label,
                p->skipped     ? "done before"
                : p->done      ? "done"
                : p->detail[0] ? p->detail
                               : "start",
                el, eta);
        ui->last_plain = p->elapsed_s;
    }
    fflush(stderr);
}

static bool parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static bool is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The command line as one string, for the report. */
static void join_args(int argc, char **argv, char *buf, size_t cap)
{
    size_t n = (size_t)snprintf(buf, cap, "loft suite");
    for (int i = 1; i < argc && n < cap; i++) {
        /* A stop point is for one call, not for the command that resumes. */
        if (!strcmp(argv[i], "--stop-after")) {
            i++;
            continue;
        }
        n += (size_t)snprintf(buf + n, cap - n, strchr(argv[i], ' ') ? " \"%s\"" : " %s", argv[i]);
    }
}

int cmd_suite(int argc, char **argv)
{
    bool full = false, progress = true, extra_set = false;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--full")) full = true;
    suite_opts o;
    suite_opts_default(&o, full);
    const char *threads = NULL;
    long steps = -1, limit = -1, stop_after = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--full") || !strcmp(a, "--quick")) {
            if (!strcmp(a, "--quick") && full) {
                fprintf(stderr, "loft suite: --quick and --full exclude each other\n");
                return 2;
            }
        } else if (!strcmp(a, "--no-progress")) {
            progress = false;
        } else if (!v) {
            fprintf(stderr, "loft suite: unknown option or missing value '%s' (see --help)\n", a);
            return 2;
        } else {
            i++;
            if (!strcmp(a, "--models"))
                o.models_dir = v;
            else if (!strcmp(a, "--data"))
                o.data_dir = v;
            else if (!strcmp(a, "--out"))
                o.out_dir = v;
            else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
                threads = v;
            else if (!strcmp(a, "--model"))
                o.default_model = v;
            else if (!strcmp(a, "--extra")) {
                if (!extra_set) o.n_extra = 0;
                extra_set = true;
                if (strcmp(v, "none") && o.n_extra < SUITE_MAX_EXTRA)
                    o.extra_models[o.n_extra++] = v;
            } else if (!strcmp(a, "--steps") && parse_int(v, 0, 1000000, &n))
                steps = n;
            else if (!strcmp(a, "--limit") && parse_int(v, 0, 1000000, &n))
                limit = n;
            else if (!strcmp(a, "--stop-after") && parse_int(v, 1, 1000000, &n))
                stop_after = n; /* for tests: stop after N items */
            else {
                fprintf(stderr, "loft suite: unknown option or bad value '%s %s' (see --help)\n", a,
                        v);
                return 2;
            }
        }
    }
    if (threads) {
        o.n_threads = 0;
        for (const char *p = threads; *p;) {
            char *end;
            long t = strtol(p, &end, 10);
            if (end == p || t < 1 || t > 1024 || o.n_threads >= SUITE_MAX_THREADS) {
                fprintf(stderr, "loft suite: -t takes up to %d thread counts, e.g. 1,4\n",
                        SUITE_MAX_THREADS);
                return 2;
            }
            o.threads[o.n_threads++] = (int)t;
            p = *end == ',' ? end + 1 : end;
            if (*end && *end != ',') {
                fprintf(stderr, "loft suite: bad thread list '%s'\n", threads);
                return 2;
            }
        }
    }
    if (steps >= 0) o.max_steps = steps;
    if (limit >= 0) o.eval_limit = (int)limit;
    o.stop_after_items = (int)stop_after;
    if (!o.data_dir && is_dir("../shared/data")) o.data_dir = "../shared/data";
    char command[1024];
    join_args(argc, argv, command, sizeof command);
    o.command = command;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    o.stop = &stop_requested;
    progress_ui ui = {.tty = isatty(STDERR_FILENO) != 0, .on = progress};
    o.progress = show;
    o.progress_ud = &ui;

    suite_summary sum;
    loft_status st = {0};
    if (suite_run(&o, &sum, &st) != LOFT_OK) {
        if (ui.tty && ui.last_len) fputc('\n', stderr);
        fprintf(stderr, "loft suite: %s\n", st.msg);
        return st.code == LOFT_ERR_ARG ? 2 : 1;
    }
    if (ui.tty && ui.last_len) fputc('\n', stderr);
    if (sum.stopped) {
        printf("loft suite: stopped after %d of %d items (%d run now, %d done before); the "
               "finished ones are kept.\nResume with the same command: %s\n",
               sum.n_run + sum.n_loaded, sum.n_items, sum.n_run, sum.n_loaded, command);
        printf("Partial report: %s/report.md\n", o.out_dir);
        return 0;
    }
    printf("loft suite: %d items (%d run now, %d done before, %d failed) in %.1f s\n", sum.n_items,
           sum.n_run, sum.n_loaded, sum.n_failed, sum.seconds);
    printf("Report: %s/report.md, %s/report.html; results: %s/results.json\n", o.out_dir, o.out_dir,
           o.out_dir);
    if (sum.headline[0]) printf("Summary: %s\n", sum.headline);
    return 0;
}
