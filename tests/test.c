#include "test.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "train/dataset.h"
#include "train/train.h"

static int case_failed;

void test_record_failure(const char *file, int line, const char *what)
{
    fprintf(stderr, "    %s:%d: check failed: %s\n", file, line, what);
    case_failed = 1;
}

int test_main(int argc, char **argv, const test_case *cases, int n_cases)
{
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0;
    for (int i = 0; i < n_cases; i++) {
        if (filter && !strstr(cases[i].name, filter)) continue;
        case_failed = 0;
        cases[i].fn();
        fflush(stderr);
        printf("%s %s\n", case_failed ? "FAIL" : "ok  ", cases[i].name);
        fflush(stdout);
        if (case_failed)
            failed++;
        else
            passed++;
    }
    printf("RESULT %d %d\n", passed, failed);
    return failed ? 1 : 0;
}

const char *test_model_path(const char *file_name)
{
    static char buf[4096];
    const char *dir = getenv("LOFT_MODELS");
    snprintf(buf, sizeof buf, "%s/%s", dir && *dir ? dir : "models", file_name);
    return buf;
}

const char *test_data_path(const char *rel)
{
    static char buf[4096];
    const char *dir = getenv("LOFT_TESTS");
    snprintf(buf, sizeof buf, "%s/%s", dir && *dir ? dir : "tests", rel);
    return buf;
}

const char *test_loft_bin(void)
{
    const char *bin = getenv("LOFT_BIN");
    return bin && *bin ? bin : "build/loft";
}

void *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *b = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0) b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (!b) return NULL;
    b[n] = '\0';
    if (len) *len = (size_t)n;
    return b;
}

int test_run(const char *cmd, char **out)
{
    *out = NULL;
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    if (!buf) {
        pclose(p);
        return -1;
    }
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len - 1 == 0) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                pclose(p);
                return -1;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    buf[len] = '\0';
    *out = buf;
    int status = pclose(p);
    if (status == -1) return -1;
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}

void test_make_train_data(train_dataset *d, uint32_t seed, int period)
{
    memset(d, 0, sizeof *d);
    d->n = 7;
    d->ex = calloc(d->n, sizeof *d->ex);
    uint32_t r = seed;
    for (size_t i = 0; i < d->n; i++) {
        train_example *ex = &d->ex[i];
        ex->n = 6 + (int32_t)(i % (size_t)period) * 2;
        ex->tokens = malloc((size_t)ex->n * sizeof *ex->tokens);
        ex->mask = malloc((size_t)ex->n);
        for (int32_t j = 0; j < ex->n; j++) {
            r = r * 1103515245u + 12345u;
            ex->tokens[j] = (int32_t)((r >> 16) % 256);
            ex->mask[j] = j >= 2;
            ex->n_loss += ex->mask[j];
        }
    }
}

train_opts test_small_train_opts(void)
{
    return (train_opts){.n_ctx = 16,
                        .n_batch = 24,
                        .n_threads = 2,
                        .rank = 2,
                        .alpha = 4.0f,
                        .modules = 0x7f,
                        .lora_seed = 9,
                        .seed = 11,
                        .lr = 5e-3,
                        .lr_min = 1e-5,
                        .sched = LR_COSINE,
                        .warmup_steps = 2,
                        .n_epochs = 2,
                        .weight_decay = 0.01f,
                        .beta1 = 0.9f,
                        .beta2 = 0.999f,
                        .eps = 1e-8f,
                        .grad_clip = 1.0,
                        .shuffle = true};
}

void test_stop_at(void *ud, const train_report *r)
{
    test_stopper *s = ud;
    if (!r->is_eval && r->step == s->at) s->flag = 1;
}
