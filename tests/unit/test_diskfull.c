/*
 * No lost work. A write that fails part-way (here: a file-size limit,
 * RLIMIT_FSIZE with SIGXFSZ ignored, set in a child process, which makes
 * write() fail with EFBIG exactly as a full disk fails with ENOSPC) must
 * leave the previous file intact, leave no temporary behind and give one
 * clear error naming the file:
 *   - atomic_file (text) and gguf_writer_write over an existing file;
 *   - a fine-tuning run resumed from step 2 whose step-3 checkpoint cannot
 *     be written: the run fails with the reason, checkpoint 2 is untouched
 *     and still resumes to the same adapter as an uninterrupted run;
 *   - `loft finetune` stopped by SIGTERM exits 0 with a checkpoint; rerun
 *     with --auto-resume under the limit it exits 1 with one error line and
 *     the checkpoint intact; rerun without the limit it resumes and finishes.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/atomic_file.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "quant/quant.h"
#include "test.h"
#include "train/checkpoint.h"
#include "train/dataset.h"
#include "train/lora.h"
#include "train/optim.h"
#include "train/train.h"

/* ---- helpers ---------------------------------------------------------- */

static bool same_file(const char *a, const char *b)
{
    size_t la, lb;
    unsigned char *x = test_read_file(a, &la), *y = test_read_file(b, &lb);
    bool same = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

static bool file_is(const char *path, const unsigned char *want, size_t n)
{
    size_t len;
    unsigned char *b = test_read_file(path, &len);
    bool same = b && len == n && !memcmp(b, want, n);
    free(b);
    return same;
}

static void rm_rf(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

/* Entries under dir (one level of subdirectories too) whose name holds a
 * temporary's mark: ".tmp" anywhere. */
static int count_temporaries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (strstr(e->d_name, ".tmp")) n++;
        char sub[4200];
        snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            DIR *s = opendir(sub);
            struct dirent *f;
            while (s && (f = readdir(s)))
                if (strstr(f->d_name, ".tmp")) n++;
            if (s) closedir(s);
        }
    }
    closedir(d);
    return n;
}

/* In a child: no file may grow past limit bytes, and passing it fails the
 * write (EFBIG) instead of killing the process. */
static void limit_file_size(rlim_t limit)
{
    struct rlimit rl = {limit, limit};
    signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(120);
}

/* Runs fn(ud, msg) in a child under the size limit; the child's exit status
 * is returned and the message it wrote (its loft_status) lands in msg. */
typedef int (*child_fn)(void *ud, char *msg, size_t cap);

static int in_limited_child(rlim_t limit, child_fn fn, void *ud, char *msg, size_t cap)
{
    int fds[2];
    if (pipe(fds) != 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(fds[0]);
        limit_file_size(limit);
        char m[1024] = "";
        int rc = fn(ud, m, sizeof m);
        size_t n = strlen(m);
        if (write(fds[1], m, n) != (ssize_t)n) rc = 121;
        close(fds[1]);
        _exit(rc);
    }
    close(fds[1]);
    size_t got = 0;
    ssize_t r;
    while (got + 1 < cap && (r = read(fds[0], msg + got, cap - 1 - got)) > 0)
        got += (size_t)r;
    msg[got] = '\0';
    close(fds[0]);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- atomic_file and gguf_writer -------------------------------------- */

typedef struct write_job {
    const char *path;
    bool gguf;
} write_job;

/* 256 KiB of text or one 256 KiB tensor: far past the child's limit. */
static int write_big(void *ud, char *msg, size_t cap)
{
    const write_job *j = ud;
    loft_status st = {0};
    loft_code c;
    if (j->gguf) {
        static float data[65536];
        for (int i = 0; i < 65536; i++)
            data[i] = (float)i;
        gguf_writer *w = gguf_writer_init(0);
        if (!w) return 3;
        const int64_t ne[1] = {65536};
        c = gguf_writer_set_str(w, "general.name", "big");
        if (!c) c = gguf_writer_add_tensor(w, "big", LOFT_TYPE_F32, 1, ne, data, sizeof data);
        if (!c) c = gguf_writer_write(w, j->path, &st);
        gguf_writer_free(w);
    } else {
        atomic_file af;
        c = atomic_file_open(&af, j->path, &st);
        if (c) {
            snprintf(msg, cap, "%s", st.msg);
            return 3;
        }
        for (int i = 0; i < 8192; i++)
            fprintf(af.f, "line %05d of a report that will not fit in the limit\n", i);
        c = atomic_file_commit(&af, &st);
    }
    snprintf(msg, cap, "%s", st.msg);
    return c == LOFT_ERR_IO ? 0 : 4;
}

static void check_write_kept(bool gguf)
{
    char dir[128], path[160];
    snprintf(dir, sizeof dir, "/tmp/loft-diskfull-w-%d", (int)getpid());
    rm_rf(dir);
    CHECK(mkdir(dir, 0777) == 0);
    snprintf(path, sizeof path, "%s/out.%s", dir, gguf ? "gguf" : "json");
    /* the previous version, written the same way */
    static const unsigned char old[] = "{\"previous\": true}\n";
    loft_status st;
    atomic_file af;
    CHECK(atomic_file_open(&af, path, &st) == LOFT_OK);
    fwrite(old, 1, sizeof old - 1, af.f);
    CHECKF(atomic_file_commit(&af, &st) == LOFT_OK, "%s", st.msg);
    CHECK(file_is(path, old, sizeof old - 1));

    write_job j = {path, gguf};
    char msg[1024];
    int rc = in_limited_child(16 * 1024, write_big, &j, msg, sizeof msg);
    CHECKF(rc == 0, "child status %d: %s", rc, msg);
    /* one line: the file, the step, the system's reason, and that the old
     * file is kept */
    CHECKF(strstr(msg, path) && strstr(msg, strerror(EFBIG)) && strstr(msg, "previous file") &&
               !strchr(msg, '\n'),
           "message: %s", msg);
    CHECKF(file_is(path, old, sizeof old - 1), "%s changed after a failed write", path);
    CHECKF(count_temporaries(dir) == 0, "a temporary was left in %s", dir);
    rm_rf(dir);
}

static void test_atomic_text_limit(void)
{
    check_write_kept(false);
}

static void test_gguf_write_limit(void)
{
    check_write_kept(true);
}

/* ---- a training run whose checkpoint cannot be written ---------------- */

static train_opts tiny_opts(test_stopper *sp)
{
    train_opts o = test_small_train_opts();
    o.lora_seed = 3;
    o.seed = 5;
    o.warmup_steps = 1;
    o.n_epochs = 3;
    o.save_every = 1;
    o.max_steps = 5;
    o.stop = &sp->flag;
    o.report = test_stop_at;
    o.report_ud = sp;
    return o;
}

typedef struct resume_job {
    const char *dir, *out;
} resume_job;

/* Child: resume from the newest checkpoint; the next checkpoint cannot be
 * written. Exit 0 when train_run failed with LOFT_ERR_IO. */
static int resume_limited(void *ud, char *msg, size_t cap)
{
    const resume_job *j = ud;
    loft_status st = {0};
    loft_model *m = NULL;
    if (model_load(&m, test_data_path("golden/qwen/llama.gguf"), &st) != LOFT_OK) {
        snprintf(msg, cap, "%s", st.msg);
        return 5;
    }
    train_dataset d;
    test_make_train_data(&d, 17, 3);
    test_stopper sp = {.flag = 0, .at = -1};
    train_opts o = tiny_opts(&sp);
    o.ckpt_dir = j->dir;
    o.output_adapter = j->out;
    o.auto_resume = true;
    train_result res;
    loft_code c = train_run(m, &d, NULL, &o, &res, &st);
    snprintf(msg, cap, "%s", c ? st.msg : "train_run succeeded");
    dataset_free(&d);
    model_free(m);
    return c == LOFT_ERR_IO ? 0 : 6;
}

static void test_checkpoint_limit_resume(void)
{
    loft_status st;
    char dir[128], full[160], part[160], ck2[200], saved[200];
    snprintf(dir, sizeof dir, "/tmp/loft-diskfull-ck-%d", (int)getpid());
    snprintf(full, sizeof full, "%s-full.gguf", dir);
    snprintf(part, sizeof part, "%s-part.gguf", dir);
    rm_rf(dir);
    train_dataset d;
    test_make_train_data(&d, 17, 3);
    test_stopper sp = {.flag = 0, .at = -1};
    loft_model *m = NULL;
    CHECK(model_load(&m, test_data_path("golden/qwen/llama.gguf"), &st) == LOFT_OK);
    /* uninterrupted: 5 steps, no checkpoints */
    train_opts o = tiny_opts(&sp);
    o.output_adapter = full;
    train_result res;
    CHECKF(train_run(m, &d, NULL, &o, &res, &st) == LOFT_OK, "%s", st.msg);
    CHECK(res.steps == 5 && !res.stopped);
    /* the same run stopped after step 2, checkpoints 1 and 2 written */
    sp.at = 2;
    o.ckpt_dir = dir;
    o.output_adapter = part;
    CHECKF(train_run(m, &d, NULL, &o, &res, &st) == LOFT_OK, "%s", st.msg);
    CHECK(res.stopped && res.steps == 2);
    model_free(m); /* the child starts from a process without threads */
    m = NULL;
    snprintf(ck2, sizeof ck2, "%s/checkpoint_step_00000002", dir);
    snprintf(saved, sizeof saved, "%s-ck2-adapter.gguf", dir);
    char path[300];
    snprintf(path, sizeof path, "%s/adapter.gguf", ck2);
    size_t n_adapter = 0, n_state = 0;
    unsigned char *adapter = test_read_file(path, &n_adapter);
    snprintf(path, sizeof path, "%s/state.gguf", ck2);
    unsigned char *state = test_read_file(path, &n_state);
    CHECK(adapter && state && n_adapter > 1024 && n_state > 1024);

    /* Resume under a limit below either file's size: step 3 trains, its
     * checkpoint fails. */
    rlim_t limit = (rlim_t)((n_adapter < n_state ? n_adapter : n_state) / 2);
    resume_job j = {dir, part};
    char msg[1024];
    int rc = in_limited_child(limit, resume_limited, &j, msg, sizeof msg);
    CHECKF(rc == 0, "child status %d: %s", rc, msg);
    CHECKF(strstr(msg, strerror(EFBIG)) && strstr(msg, dir) && !strchr(msg, '\n'),
           "message: %s", msg);
    CHECKF(count_temporaries(dir) == 0, "a temporary was left in %s", dir);

    /* checkpoint 2 is still the newest complete one, byte for byte */
    char *found = NULL;
    CHECK(train_find_checkpoint(dir, &found, &st) == LOFT_OK && found);
    bool newest = !strcmp(found, ck2);
    free(found);
    CHECKF(newest, "newest checkpoint is not step 2 after the failed step-3 save");
    snprintf(path, sizeof path, "%s/adapter.gguf", ck2);
    CHECK(file_is(path, adapter, n_adapter));
    snprintf(path, sizeof path, "%s/state.gguf", ck2);
    CHECK(file_is(path, state, n_state));
    free(adapter);
    free(state);

    /* and it resumes to the uninterrupted run's adapter */
    CHECK(model_load(&m, test_data_path("golden/qwen/llama.gguf"), &st) == LOFT_OK);
    sp.at = -1;
    sp.flag = 0;
    o.auto_resume = true;
    CHECKF(train_run(m, &d, NULL, &o, &res, &st) == LOFT_OK, "%s", st.msg);
    CHECK(res.resumed && res.resumed_step == 2 && res.steps == 5);
    CHECKF(same_file(full, part), "adapter resumed after the failed save differs");
    model_free(m);
    dataset_free(&d);
    rm_rf(dir);
    unlink(full);
    unlink(part);
}

/* ---- the program: SIGTERM, then a resume that cannot save ------------- */

static const char *data_file(char *path, size_t cap)
{
    snprintf(path, cap, "/tmp/loft-diskfull-data-%d.jsonl", (int)getpid());
    FILE *f = fopen(path, "w");
    if (!f) return NULL;
    static const char *const qa[][2] = {
        {"Does aspirin thin the blood?", "Yes, it reduces platelet aggregation."},
        {"Is insulin made in the liver?", "No, it is made in the pancreas."},
        {"Can vitamin C cure a cold?", "No, evidence shows no cure."},
        {"Does exercise lower blood pressure?", "Yes, regular exercise lowers it."},
    };
    for (int i = 0; i < 4; i++)
        fprintf(f,
                "{\"messages\": [{\"role\": \"user\", \"content\": \"%s\"}, {\"role\": "
                "\"assistant\", \"content\": \"%s\"}]}\n",
                qa[i][0], qa[i][1]);
    return fclose(f) == 0 ? path : NULL;
}

/* Starts `loft finetune` with stdout/stderr to files; limit > 0 sets the
 * file-size limit in the child first. */
static pid_t spawn(const char *data, const char *dir, const char *out, const char *log,
                   bool resume, rlim_t limit)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(log, "w", stderr) || !freopen("/dev/null", "w", stdout)) _exit(127);
        if (limit) limit_file_size(limit);
        execl(test_loft_bin(), "loft", "finetune", "-m",
              test_model_path("smollm2-135m-instruct-q4_1.gguf"), "-f", data,
              "--assistant-loss-only", "-c", "48", "-t", "2", "--lora-rank", "2",
              "--lora-modules", "attn_q,attn_v", "--num-epochs", "3", "--learning-rate", "1e-3",
              "--checkpoint-save-steps", "1", "--checkpoint-save-dir", dir, "--output-adapter",
              out, "--seed", "3", "-b", "16", resume ? "--auto-resume" : "--shuffle",
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

static bool exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0;
}

static void test_program_sigterm_then_full_disk(void)
{
    char data[128], dir[128], out[160], log[160], ck1[200], path[300];
    CHECK(data_file(data, sizeof data));
    snprintf(dir, sizeof dir, "/tmp/loft-diskfull-cli-%d", (int)getpid());
    snprintf(out, sizeof out, "%s.gguf", dir);
    snprintf(log, sizeof log, "%s.log", dir);
    rm_rf(dir);
    unlink(out);
    snprintf(ck1, sizeof ck1, "%s/checkpoint_step_00000001/state.gguf", dir);

    /* SIGTERM once the first checkpoint exists: the step in progress
     * finishes, a checkpoint is written, exit status 0. */
    pid_t pid = spawn(data, dir, out, log, false, 0);
    for (int i = 0; i < 6000 && !exists(ck1); i++) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            pid = -1;
            break;
        }
    }
    CHECKF(pid > 0, "loft finetune ended before its first checkpoint");
    CHECK(kill(pid, SIGTERM) == 0);
    int rc = wait_exit(pid);
    CHECKF(rc == 0, "SIGTERM: exit status %d", rc);
    CHECK(!exists(out)); /* stopped early: no final adapter */
    char *newest = NULL;
    loft_status st;
    CHECK(train_find_checkpoint(dir, &newest, &st) == LOFT_OK && newest);
    snprintf(path, sizeof path, "%s/adapter.gguf", newest);
    size_t n_adapter = 0;
    unsigned char *adapter = test_read_file(path, &n_adapter);
    CHECK(adapter && n_adapter > 4096);

    /* --auto-resume where no file may grow past half the adapter: exit 1,
     * one error line with the reason, the checkpoint untouched. */
    pid = spawn(data, dir, out, log, true, (rlim_t)(n_adapter / 2));
    rc = wait_exit(pid);
    size_t n_log = 0;
    char *text = (char *)test_read_file(log, &n_log);
    int err_lines = 0;
    for (char *p = text; p && (p = strstr(p, strerror(EFBIG))); p++)
        err_lines++;
    CHECKF(rc == 1 && err_lines == 1, "limited resume: status %d, stderr:\n%s", rc,
           text ? text : "");
    free(text);
    CHECK(file_is(path, adapter, n_adapter));
    CHECKF(count_temporaries(dir) == 0, "a temporary was left in %s", dir);
    char *again = NULL;
    CHECK(train_find_checkpoint(dir, &again, &st) == LOFT_OK && again);
    CHECK(!strcmp(again, newest));
    free(again);
    free(adapter);

    /* without the limit it resumes from there and finishes */
    pid = spawn(data, dir, out, log, true, 0);
    rc = wait_exit(pid);
    text = (char *)test_read_file(log, &n_log);
    bool resumed = text && strstr(text, "resumed from step");
    free(text);
    CHECKF(rc == 0 && resumed && exists(out), "resume after the failed save: status %d", rc);
    free(newest);
    rm_rf(dir);
    unlink(out);
    unlink(log);
    unlink(data);
}

/* ---- what a killed run left behind ------------------------------------ */

/* The id of a process that has exited and been reaped. */
static long dead_pid(void)
{
    pid_t p = fork();
    if (p == 0) _exit(0);
    int ws;
    if (p < 0 || waitpid(p, &ws, 0) != p) return -1;
    return (long)p;
}

static void touch(const char *path)
{
    FILE *f = fopen(path, "wb");
    CHECKF(f != NULL, "cannot create %s", path);
    fputs("partial", f);
    fclose(f);
}

static void test_stale_temporaries_removed(void)
{
    char dir[64], out[128], gone[192], live[192], other[192], odd[192];
    snprintf(dir, sizeof dir, "/tmp/loft-stale-%d", (int)getpid());
    rm_rf(dir);
    CHECK(mkdir(dir, 0777) == 0);
    const long dead = dead_pid();
    CHECK(dead > 1);
    snprintf(out, sizeof out, "%s/out.gguf", dir);
    snprintf(gone, sizeof gone, "%s.tmp.%ld", out, dead);
    snprintf(live, sizeof live, "%s.tmp.%ld", out, (long)getppid());
    snprintf(other, sizeof other, "%s/other.gguf.tmp.%ld", dir, dead);
    snprintf(odd, sizeof odd, "%s.tmp.%ldx", out, dead);
    touch(gone);
    touch(live);
    touch(other);
    touch(odd);
    char name[96];
    snprintf(name, sizeof name, "out.gguf.tmp.%ld", dead);
    CHECK(atomic_tmp_is_stale(name, "out.gguf.tmp."));
    snprintf(name, sizeof name, "out.gguf.tmp.%ld.old", dead);
    CHECK(atomic_tmp_is_stale(name, "out.gguf.tmp."));
    snprintf(name, sizeof name, "out.gguf.tmp.%ld", (long)getpid());
    CHECK(!atomic_tmp_is_stale(name, "out.gguf.tmp."));
    CHECK(!atomic_tmp_is_stale("out.gguf.tmp.", "out.gguf.tmp."));
    CHECK(!atomic_tmp_is_stale("out.gguf", "out.gguf.tmp."));

    atomic_file af;
    loft_status st;
    CHECK(atomic_file_open(&af, out, &st) == LOFT_OK);
    fputs("whole", af.f);
    CHECKF(atomic_file_commit(&af, &st) == LOFT_OK, "%s", st.msg);
    struct stat sb;
    CHECKF(stat(gone, &sb) != 0, "%s (its writer is gone) was kept", gone);
    CHECKF(stat(live, &sb) == 0, "%s (its writer lives) was removed", live);
    CHECKF(stat(other, &sb) == 0, "%s (another file's) was removed", other);
    CHECKF(stat(odd, &sb) == 0, "%s (not a temporary's name) was removed", odd);
    CHECK(file_is(out, (const unsigned char *)"whole", 5));

    /* a checkpoint save removes the temporary directories of killed saves */
    char ck[128], stale_dir[256], stale_old[256], live_dir[256], inner[320];
    snprintf(ck, sizeof ck, "%s/ck", dir);
    CHECK(mkdir(ck, 0777) == 0);
    snprintf(stale_dir, sizeof stale_dir, "%s/.tmp-checkpoint_step_00000003.%ld", ck, dead);
    snprintf(stale_old, sizeof stale_old, "%s.old", stale_dir);
    snprintf(live_dir, sizeof live_dir, "%s/.tmp-checkpoint_step_00000003.%ld", ck,
             (long)getppid());
    const char *dirs[3] = {stale_dir, stale_old, live_dir};
    for (int i = 0; i < 3; i++) {
        CHECK(mkdir(dirs[i], 0777) == 0);
        snprintf(inner, sizeof inner, "%s/adapter.gguf", dirs[i]);
        touch(inner);
    }
    lora_dims dims = {.n_layer = 1};
    dims.n_in[LORA_ATTN_Q] = 8;
    dims.n_out[LORA_ATTN_Q] = 8;
    lora_set ls;
    adamw opt;
    CHECK(lora_set_init(&ls, &dims, 1u << LORA_ATTN_Q, 2, 4.0f, &st) == LOFT_OK);
    CHECK(adamw_init(&opt, ls.n_params, 0.9f, 0.999f, 1e-8f, 0.0f, &st) == LOFT_OK);
    const train_state ts = {.step = 4, .epoch = 0, .pos = 1, .seed = 1, .n_examples = 1};
    const int32_t order[1] = {0};
    CHECKF(checkpoint_save(ck, &ls, &opt, &ts, order, 1, "llama", &st) == LOFT_OK, "%s", st.msg);
    CHECKF(stat(stale_dir, &sb) != 0 && stat(stale_old, &sb) != 0,
           "a killed save's temporary directory was kept");
    CHECKF(stat(live_dir, &sb) == 0, "a live save's temporary directory was removed");
    adamw_free(&opt);
    lora_set_free(&ls);
    rm_rf(dir);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"atomic_text_limit", test_atomic_text_limit},
        {"gguf_write_limit", test_gguf_write_limit},
        {"checkpoint_limit_resume", test_checkpoint_limit_resume},
        {"program_sigterm_then_full_disk", test_program_sigterm_then_full_disk},
        {"stale_temporaries_removed", test_stale_temporaries_removed},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
