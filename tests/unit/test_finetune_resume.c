/*
 * Exact resume of a fine-tuning run.
 *   - library: the tiny F32 llama (tests/golden/qwen/llama.gguf) trained 12
 *     steps straight, and the same run stopped after a random step (the stop
 *     flag, as SIGINT sets it), then resumed from its checkpoint with
 *     auto_resume: the two adapters are byte-identical, and train_log.jsonl
 *     lists every step once although the stopped run's log had a line past
 *     its checkpoint (as a SIGKILL leaves it);
 *   - program: `loft finetune` on SmolLM2 with a few biomedical examples,
 *     killed with SIGKILL at a random moment and rerun with --auto-resume
 *     --deterministic, ends with an adapter file byte-identical to an
 *     uninterrupted run's; SIGINT finishes the step, checkpoints and exits 0.
 */
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "model/model.h"
#include "test.h"
#include "train/train.h"

static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static bool same_file(const char *a, const char *b)
{
    size_t la, lb;
    unsigned char *x = read_file(a, &la), *y = read_file(b, &lb);
    bool same = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

static void rm_rf(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

/* ---- library --------------------------------------------------------- */

/* True when the train lines of the log at path are steps 1..total, each
 * once, in order. */
static bool log_has_each_step_once(const char *path, int64_t total)
{
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char line[1024];
    int64_t next = 1;
    bool ok = true;
    while (ok && fgets(line, sizeof line, f)) {
        if (!strstr(line, "\"type\":\"train\"")) continue;
        const char *p = strstr(line, "\"step\":");
        ok = p && strtoll(p + 7, NULL, 10) == next++;
    }
    fclose(f);
    return ok && next == total + 1;
}

static void test_library_resume(void)
{
    loft_status st;
    loft_model *m = NULL;
    CHECK(model_load(&m, test_data_path("golden/qwen/llama.gguf"), &st) == LOFT_OK);
    train_dataset d;
    test_make_train_data(&d, 5, 4);
    char dir[128], full[160], part[160];
    snprintf(dir, sizeof dir, "/tmp/loft-resume-lib-%d", (int)getpid());
    rm_rf(dir);
    snprintf(full, sizeof full, "%s-full.gguf", dir);
    snprintf(part, sizeof part, "%s-part.gguf", dir);
    test_stopper sp = {.flag = 0, .at = -1};
    train_opts o = test_small_train_opts();
    o.n_epochs = 4;
    o.output_adapter = full;
    o.stop = &sp.flag;
    o.report = test_stop_at;
    o.report_ud = &sp;
    train_result res;
    CHECKF(train_run(m, &d, NULL, &o, &res, &st) == LOFT_OK, "%s", st.msg);
    const int64_t total = res.steps;
    CHECK(total > 8 && !res.stopped);
    srand((unsigned)time(NULL));
    sp.at = 1 + rand() % (int)(total - 2);
    o.output_adapter = part;
    o.ckpt_dir = dir;
    CHECK(train_run(m, &d, NULL, &o, &res, &st) == LOFT_OK);
    CHECKF(res.stopped && res.steps == sp.at, "stopped %d at %lld, asked %lld", res.stopped,
           (long long)res.steps, (long long)sp.at);
    /* What a run killed after step at + 1 leaves: a log line past the
     * checkpoint, which the resumed run redoes and must not log twice. */
    char log_path[200];
    snprintf(log_path, sizeof log_path, "%s/train_log.jsonl", dir);
    FILE *lf = fopen(log_path, "a");
    CHECK(lf);
    fprintf(lf, "{\"type\":\"train\",\"epoch\":1,\"step\":%lld,\"loss\":1}\n",
            (long long)sp.at + 1);
    fclose(lf);
    const int64_t stopped_at = sp.at;
    sp.at = -1;
    sp.flag = 0;
    o.auto_resume = true;
    CHECK(train_run(m, &d, NULL, &o, &res, &st) == LOFT_OK);
    CHECK(res.resumed && res.steps == total);
    CHECKF(log_has_each_step_once(log_path, total), "%s: steps missing or repeated after a "
           "resume at step %lld", log_path, (long long)stopped_at);
    CHECKF(same_file(full, part), "adapter after a stop at step %lld and resume differs",
           (long long)sp.at);
    rm_rf(dir);
    unlink(full);
    unlink(part);
    dataset_free(&d);
    model_free(m);
}

/* ---- program --------------------------------------------------------- */

static const char *data_file(void)
{
    static char path[128];
    snprintf(path, sizeof path, "/tmp/loft-resume-data-%d.jsonl", (int)getpid());
    FILE *in = fopen("../shared/data/biomedical_qa/train.jsonl", "r");
    FILE *out = fopen(path, "w");
    if (!in || !out) {
        if (in) fclose(in);
        if (out) fclose(out);
        return NULL;
    }
    char line[1 << 14];
    for (int i = 0; i < 4 && fgets(line, sizeof line, in); i++)
        fputs(line, out);
    fclose(in);
    fclose(out);
    return path;
}

static pid_t spawn(const char *data, const char *dir, const char *out, bool resume)
{
    fflush(NULL); /* a child must not flush our buffered output again */
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr)) _exit(127);
        execl(test_loft_bin(), "loft", "finetune", "-m",
              test_model_path("smollm2-135m-instruct-q4_1.gguf"), "-f", data,
              "--assistant-loss-only", "-c", "32", "-b", "64", "-ub", "64", "-t", "2",
              "--lora-rank", "2", "--lora-modules", "attn_q,attn_v,ffn_down", "--num-epochs", "2",
              "--learning-rate", "1e-3", "--lr-scheduler", "cosine", "--warmup-ratio", "0.2",
              "--checkpoint-save-steps", "1", "--checkpoint-save-dir", dir, "--output-adapter", out,
              "--deterministic", "--seed", "7", resume ? "--auto-resume" : "--shuffle",
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid)
{
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -1;
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int count_checkpoints(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, "checkpoint_step_", 16)) n++;
    closedir(d);
    return n;
}

static void test_program_sigkill_resume(void)
{
    const char *data = data_file();
    CHECK(data);
    char base[96], dir1[128], dir2[128], out1[128], out2[128];
    snprintf(base, sizeof base, "/tmp/loft-resume-cli-%d", (int)getpid());
    snprintf(dir1, sizeof dir1, "%s-a", base);
    snprintf(dir2, sizeof dir2, "%s-b", base);
    snprintf(out1, sizeof out1, "%s-a.gguf", base);
    snprintf(out2, sizeof out2, "%s-b.gguf", base);
    rm_rf(dir1);
    rm_rf(dir2);
    double t0 = now_s();
    CHECK(wait_exit(spawn(data, dir1, out1, false)) == 0);
    const double full_s = now_s() - t0;
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    const double kill_after = full_s * (0.2 + 0.6 * (double)rand() / RAND_MAX);
    pid_t pid = spawn(data, dir2, out2, false);
    struct timespec ts = {(time_t)kill_after,
                          (long)((kill_after - (double)(time_t)kill_after) * 1e9)};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    const int rc = wait_exit(pid);
    printf("  full run %.1fs; killed after %.1fs (exit %d, %d checkpoints)\n", full_s, kill_after,
           rc, count_checkpoints(dir2));
    CHECK(wait_exit(spawn(data, dir2, out2, true)) == 0);
    CHECKF(same_file(out1, out2), "adapter after SIGKILL at %.1fs and --auto-resume differs",
           kill_after);

    /* SIGINT: the step finishes, a checkpoint is written, exit status 0 */
    rm_rf(dir2);
    unlink(out2);
    pid = spawn(data, dir2, out2, false);
    ts.tv_sec = (time_t)(full_s * 0.4);
    ts.tv_nsec = (long)((full_s * 0.4 - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
    kill(pid, SIGINT);
    CHECK(wait_exit(pid) == 0);
    CHECK(count_checkpoints(dir2) >= 1);
    rm_rf(dir1);
    rm_rf(dir2);
    unlink(out1);
    unlink(out2);
    unlink(data);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"library_resume", test_library_resume},
        {"program_sigkill_resume", test_program_sigkill_resume},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
