/*
 * Resource limits: the built loft program ($LOFT_BIN) refuses absurd sizes
 * up front. Each case must end with status 1 or 2 (not a signal, not the
 * OOM killer), within seconds, with exactly one stderr line that names the
 * flag or gives the memory the run would need. Values are chosen so the
 * refusal holds on any machine: either outside the accepted range, or
 * estimated at far more memory than exists, or with a small --mem-limit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/memfit.h"
#include "gguf/gguf.h"
#include "test.h"

/* Sanitizers multiply the resident memory; the estimate is for plain builds. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

#define SMOL "smollm2-135m-instruct-q4_1.gguf"

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Runs "loft ARGS" (stdout discarded) and checks the refusal: status in
 * want_lo..want_hi, one stderr line containing needle, and no more than
 * 120 s (a refusal comes before the work; sanitized builds on a busy machine
 * are slow even at that). */
static void expect_refusal(const char *args, int want_lo, int want_hi, const char *needle)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1 >/dev/null </dev/null", test_loft_bin(), args);
    char *err = NULL;
    double t0 = now_s();
    int rc = test_run(cmd, &err);
    double secs = now_s() - t0;
    int ok = rc >= want_lo && rc <= want_hi && err && count_lines(err) == 1 &&
             strstr(err, needle) && secs < 120.0;
    if (!ok)
        fprintf(stderr, "    loft %s\n    -> status %d after %.1fs, stderr: %s\n", args, rc, secs,
                err ? err : "(none)");
    free(err);
    CHECKF(ok, "loft %s: wanted status %d..%d and one line containing '%s'", args, want_lo,
           want_hi, needle);
}

static const char *smol(void)
{
    return test_model_path(SMOL);
}

/* A small training file in /tmp, removed at exit of the case. */
static const char *train_file(char *buf, size_t cap)
{
    snprintf(buf, cap, "/tmp/loft-limits-%d.jsonl", (int)getpid());
    FILE *f = fopen(buf, "w");
    if (!f) return NULL;
    for (int i = 0; i < 3; i++)
        fprintf(f, "{\"text\": \"Q: what is %d plus %d?\\nA: %d\"}\n", i, i, 2 * i);
    return fclose(f) == 0 ? buf : NULL;
}

static void test_run_limits(void)
{
    char a[2048];
    /* the KV cache for 16M positions: hundreds of GiB */
    snprintf(a, sizeof a, "run -m %s -p hi -n 1 -c 16777216", smol());
    expect_refusal(a, 1, 1, "does not fit in memory: OOM (needs ");
    snprintf(a, sizeof a, "run -m %s -p hi -n 1 -c 4096 --mem-limit 64M", smol());
    expect_refusal(a, 1, 1, "with -c 4096 does not fit in memory: OOM (needs ");
    snprintf(a, sizeof a, "run -m %s -p hi -n 1 -c 99999999999", smol());
    expect_refusal(a, 2, 2, "-c value out of range");
    snprintf(a, sizeof a, "run -m %s -p hi -n 1 -b 99999999", smol());
    expect_refusal(a, 2, 2, "-b value out of range");
    snprintf(a, sizeof a, "run -m %s -p hi -n 1 -ub 99999999", smol());
    expect_refusal(a, 2, 2, "-ub value out of range");
    snprintf(a, sizeof a, "run -m %s -p hi -n 99999999999", smol());
    expect_refusal(a, 2, 2, "-n value out of range");
    snprintf(a, sizeof a, "run -m %s -p hi -n 1 -t 100000", smol());
    expect_refusal(a, 2, 2, "-t value out of range");
    snprintf(a, sizeof a, "run -m %s -p hi -n 1 -t 257", smol());
    expect_refusal(a, 2, 2, "allowed -1..256");
}

static void test_prompt_limits(void)
{
    char a[2048], big[128];
    /* A sparse 3 GiB file: refused from its size, before a byte is read. */
    snprintf(big, sizeof big, "/tmp/loft-limits-big-%d.txt", (int)getpid());
    FILE *f = fopen(big, "w");
    CHECK(f);
    int ok = fseek(f, (3L << 30) - 1, SEEK_SET) == 0 && fputc('x', f) != EOF;
    ok &= fclose(f) == 0;
    CHECK(ok);
    snprintf(a, sizeof a, "run -m %s -f %s -n 1", smol(), big);
    expect_refusal(a, 1, 2, "3.00 GiB of text is more than loft reads");
    snprintf(a, sizeof a, "perplexity -m %s -f %s", smol(), big);
    expect_refusal(a, 1, 2, "more than loft reads");
    unlink(big);
    /* A prompt longer than the context, without --context-shift. */
    snprintf(a, sizeof a, "run -m %s -c 16 -n 1 -p \"$(printf 'word %%.0s' $(seq 1 200))\"",
             smol());
    expect_refusal(a, 2, 2, "but the context holds 16");
}

static void test_perplexity_eval_limits(void)
{
    char a[2048];
    const char *text = test_data_path("golden/ppl/text.txt");
    snprintf(a, sizeof a, "perplexity -m %s -f %s -c 1000000 --mem-limit 2G", smol(), text);
    expect_refusal(a, 1, 1, "with -c 1000000 -b 2048 does not fit in memory: OOM (needs ");
    /* every position's logits: 8192 x 49152 floats = 1.5 GiB */
    snprintf(a, sizeof a, "perplexity -m %s -f %s -c 8192 -b 8192 --mem-limit 1G", smol(), text);
    expect_refusal(a, 1, 1, "with -c 8192 -b 8192 does not fit in memory");
    snprintf(a, sizeof a, "perplexity -m %s -f %s -b 99999999", smol(), text);
    expect_refusal(a, 2, 2, "-b value out of range");
    snprintf(a, sizeof a, "eval -m %s -f %s --task perplexity -c 1000000 --mem-limit 2G", smol(),
             text);
    expect_refusal(a, 1, 1, "does not fit in memory: OOM (needs ");
}

static void test_finetune_limits(void)
{
    char a[2048], data[128], out[128], ck[128];
    CHECK(train_file(data, sizeof data));
    snprintf(out, sizeof out, "/tmp/loft-limits-%d.gguf", (int)getpid());
    snprintf(ck, sizeof ck, "/tmp/loft-limits-ck-%d", (int)getpid());
    const char *common = "--checkpoint-save-dir";
    /* attention probabilities alone: 9 heads x (2^20)^2 floats per layer */
    snprintf(a, sizeof a, "finetune -m %s -f %s -c 1048576 -o %s %s %s", smol(), data, out,
             common, ck);
    expect_refusal(a, 1, 1, "with -c 1048576 --lora-rank 8 does not fit in memory: OOM (needs ");
    snprintf(a, sizeof a,
             "finetune -m %s -f %s --lora-rank 4096 --lora-modules all --mem-limit 2G -o %s %s %s",
             smol(), data, out, common, ck);
    expect_refusal(a, 1, 1, "--lora-rank 4096 does not fit in memory: OOM (needs ");
    snprintf(a, sizeof a, "finetune -m %s -f %s --lora-rank 100000 -o %s", smol(), data, out);
    expect_refusal(a, 2, 2, "--lora-rank");
    snprintf(a, sizeof a, "finetune -m %s -f %s -c 99999999 -o %s", smol(), data, out);
    expect_refusal(a, 2, 2, "-c");
    snprintf(a, sizeof a, "finetune -m %s -f %s -t 100000 -o %s", smol(), data, out);
    expect_refusal(a, 2, 2, "-t");
    snprintf(a, sizeof a, "finetune -m %s -f %s -b 999999999 -o %s", smol(), data, out);
    expect_refusal(a, 2, 2, "-b");
    /* nothing was written by any refused run */
    CHECK(access(out, F_OK) != 0);
    CHECK(access(ck, F_OK) != 0);
    unlink(data);
}

static void test_bench_limits(void)
{
    char a[2048];
    /* the row is reported as OOM and not run; the status says so */
    snprintf(a, sizeof a, "bench -m %s -p 16777216 -n 16 -r 1 -o jsonl --no-progress", smol());
    expect_refusal(a, 1, 1, "not loaded: OOM (needs ");
    snprintf(a, sizeof a, "bench -m %s -p 2000000000 -n 2000000000", smol());
    expect_refusal(a, 2, 2, "-p");
    snprintf(a, sizeof a, "bench -m %s -t 100000 --no-progress", smol());
    expect_refusal(a, 2, 2, "thread count 100000 is outside 1..256");
}

/* The training estimate the refusals rest on is an upper bound of what a
 * run really takes, and not a wild one: `loft finetune` at -c 256 with
 * examples longer than the context (so every activation row is used)
 * peaks below the estimate and above 40% of it. */
static void test_finetune_estimate_vs_rss(void)
{
    char data[128], out[128], ck[128];
    if (SANITIZED) {
        /* The resident size means nothing here, and the run is slow; the
         * trainer under sanitizers is test_finetune_resume's business. */
        printf("  sanitized build: finetune RSS not measured\n");
        return;
    }
    snprintf(data, sizeof data, "/tmp/loft-limits-long-%d.jsonl", (int)getpid());
    snprintf(out, sizeof out, "/tmp/loft-limits-long-%d.gguf", (int)getpid());
    snprintf(ck, sizeof ck, "/tmp/loft-limits-long-ck-%d", (int)getpid());
    FILE *f = fopen(data, "w");
    CHECK(f);
    for (int i = 0; i < 2; i++) {
        fputs("{\"text\": \"", f);
        for (int w = 0; w < 400; w++)
            fprintf(f, "%s%d ", w % 3 ? "cell" : "protein", (w * 7 + i) % 100);
        fputs("\"}\n", f);
    }
    CHECK(fclose(f) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(127);
        execl(test_loft_bin(), "loft", "finetune", "-m", smol(), "-f", data, "-c", "256", "-t",
              "2", "--lora-rank", "8", "--lora-modules", "attn_q,attn_k,attn_v,attn_o",
              "--max-steps", "1", "--checkpoint-save-dir", ck, "-o", out, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    CHECK(wait4(pid, &status, 0, &ru) == pid);
    CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "loft finetune failed: status %d",
           status);
    gguf_file *g = NULL;
    loft_status st;
    CHECK(gguf_open(&g, smol(), &st) == LOFT_OK);
    memfit_train_config tc = {256, 8, 0xf, 2, 0, false};
    memfit_estimate est;
    loft_code c = memfit_estimate_train(g, &tc, &est, &st);
    gguf_close(g);
    CHECKF(c == LOFT_OK, "%s", st.msg);
    const double rss = (double)ru.ru_maxrss * 1024.0, need = (double)est.total;
    printf("  finetune -c 256 r 8: peak RSS %.1f MiB, estimate %.1f MiB\n", rss / 1048576.0,
           need / 1048576.0);
    CHECKF(rss <= need && rss >= 0.4 * need, "RSS %.0f vs estimate %.0f", rss, need);

    /* With --checkpoint-activations the estimate drops (one block's
     * activations instead of all of them), and --mem-limit follows it: a
     * limit between the two estimates refuses the normal run and lets the
     * checkpointed one train. */
    CHECK(gguf_open(&g, smol(), &st) == LOFT_OK);
    tc.checkpoint_activations = true;
    memfit_estimate est_ck;
    c = memfit_estimate_train(g, &tc, &est_ck, &st);
    gguf_close(g);
    CHECKF(c == LOFT_OK, "%s", st.msg);
    printf("  finetune -c 256 r 8 --checkpoint-activations: estimate %.1f MiB\n",
           (double)est_ck.total / 1048576.0);
    CHECK(est_ck.total < est.total);
    const unsigned long long mid_mib =
        (unsigned long long)((est_ck.total + est.total) / 2 / 1048576u);
    CHECK((uint64_t)mid_mib * 1048576u > est_ck.total && (uint64_t)mid_mib * 1048576u < est.total);
    char args[1024];
    snprintf(args, sizeof args,
             "finetune -m %s -f %s -c 256 -t 2 --lora-rank 8 --lora-modules attn_q,attn_k,attn_v,attn_o "
             "--max-steps 1 --checkpoint-save-dir %s -o %s --mem-limit %lluM",
             smol(), data, ck, out, mid_mib);
    expect_refusal(args, 1, 1, "does not fit in memory");
    char cmd2[2048];
    snprintf(cmd2, sizeof cmd2, "%s %s --checkpoint-activations >/dev/null 2>&1 </dev/null",
             test_loft_bin(), args);
    char *ignored = NULL;
    const int rc2 = test_run(cmd2, &ignored);
    free(ignored);
    CHECKF(rc2 == 0, "checkpointed run under --mem-limit %lluM: status %d", mid_mib, rc2);
    unlink(data);
    unlink(out);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", ck);
    CHECK(system(cmd) == 0);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"run_limits", test_run_limits},
        {"prompt_limits", test_prompt_limits},
        {"perplexity_eval_limits", test_perplexity_eval_limits},
        {"finetune_limits", test_finetune_limits},
        {"bench_limits", test_bench_limits},
        {"finetune_estimate_vs_rss", test_finetune_estimate_vs_rss},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
