/*
 * test_validate.c - model files that are well-formed GGUF but inconsistent
 * models are refused with a message naming the key or tensor.
 *
 * tests/corrupt/model/ holds one tiny model per fault and EXPECTED.tsv
 * (file, stage, message substring), all written by
 * tests/corrupt/make-corrupt-models.py. Stage "model" must fail model_load;
 * stage "vocab" must load as a model and fail vocab_load. The valid tiny
 * models the faults were made from (the fuzz seeds of tests/fuzz/seed-model
 * and seed-adapter, written by the same script) must load, run a forward
 * pass with finite logits, load their vocabulary and take their adapters,
 * so that each corrupt file is refused for its one fault.
 */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "infer/kv.h"
#include "kernels/kernels.h"
#include "model/model.h"
#include "test.h"
#include "text/vocab.h"
#include "train/adapter.h"
#include "train/dataset.h"

/* ---- helpers ---------------------------------------------------------------- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    return buf;
}

static int split_tabs(char *line, char **f, int max)
{
    int n = 0;
    f[n++] = line;
    for (char *p = line; *p && n < max; p++)
        if (*p == '\t') {
            *p = '\0';
            f[n++] = p + 1;
        }
    return n;
}

/* Lists the .gguf files of a folder under tests/ into names (sorted by the
 * caller's needs: order does not matter here); returns the count. */
static int list_gguf(const char *rel, char names[][128], int max)
{
    DIR *d = opendir(test_data_path(rel));
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        size_t len = strlen(e->d_name);
        if (len > 5 && !strcmp(e->d_name + len - 5, ".gguf") && len < 128)
            memcpy(names[n++], e->d_name, len + 1);
    }
    closedir(d);
    return n;
}

/* Loads path, runs tokens {0, n_vocab - 1} and checks the logits are
 * finite; returns the model (caller frees) or NULL after recording why. */
static loft_model *load_and_run(const char *path)
{
    loft_model *m = NULL;
    loft_status st = {0};
    if (model_load(&m, path, &st) != LOFT_OK) {
        char msg[700];
        snprintf(msg, sizeof msg, "%s: %s", path, st.msg);
        test_record_failure(__FILE__, __LINE__, msg);
        return NULL;
    }
    model_set_threads(m, 1, &st);
    const int32_t V = model_get_hparams(m)->n_vocab;
    kv_cache *kv = NULL;
    float *logits = malloc(2 * (size_t)V * sizeof(float));
    int32_t toks[2] = {0, V - 1};
    bool ok = logits && kv_cache_init(&kv, m, 8, &st) == LOFT_OK &&
              model_forward(m, kv, toks, 2, logits, true, &st) == LOFT_OK;
    for (int32_t i = 0; ok && i < 2 * V; i++)
        ok = isfinite(logits[i]);
    free(logits);
    kv_cache_free(kv);
    if (!ok) {
        char msg[700];
        snprintf(msg, sizeof msg, "%s: forward failed or gave non-finite logits: %s", path, st.msg);
        test_record_failure(__FILE__, __LINE__, msg);
        model_free(m);
        return NULL;
    }
    return m;
}

/* ---- the valid bases ------------------------------------------------------------ */

static void test_seed_models_load_and_run(void)
{
    char names[32][128];
    int n = list_gguf("fuzz/seed-model", names, 32);
    CHECKF(n >= 6, "%d models in tests/fuzz/seed-model", n);
    int with_vocab = 0;
    for (int i = 0; i < n; i++) {
        char rel[200];
        snprintf(rel, sizeof rel, "fuzz/seed-model/%s", names[i]);
        loft_model *m = load_and_run(test_data_path(rel));
        if (!m) return;
        const gguf_file *g = model_gguf(m);
        if (gguf_find_key(g, "tokenizer.ggml.model") >= 0) {
            loft_vocab *v = NULL;
            loft_status st = {0};
            loft_code c = vocab_load(&v, g, &st);
            vocab_free(v);
            if (c != LOFT_OK) model_free(m);
            CHECKF(c == LOFT_OK, "%s: vocab: %s", names[i], st.msg);
            with_vocab++;
        }
        model_free(m);
    }
    CHECKF(with_vocab >= 4, "only %d seed models carry a tokenizer", with_vocab);
}

static void test_seed_adapters_attach(void)
{
    loft_model *m = load_and_run(test_data_path("fuzz/seed-model/llama-bpe.gguf"));
    if (!m) return;
    char names[16][128];
    int n = list_gguf("fuzz/seed-adapter", names, 16);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        char rel[200];
        snprintf(rel, sizeof rel, "fuzz/seed-adapter/%s", names[i]);
        lora_stack s;
        memset(&s, 0, sizeof s);
        loft_status st = {0};
        loft_code c = lora_stack_add(&s, test_data_path(rel), 1.0f, m, &st);
        if (c == LOFT_OK) c = lora_stack_attach(&s, m, &st);
        model_set_adapter(m, NULL, NULL);
        lora_stack_free(&s);
        if (c != LOFT_OK) {
            char msg[700];
            snprintf(msg, sizeof msg, "%s: %s", names[i], st.msg);
            test_record_failure(__FILE__, __LINE__, msg);
        } else {
            ok++;
        }
    }
    model_free(m);
    CHECKF(ok >= 2 && ok == n, "%d of %d seed adapters attached", ok, n);
}

/* ---- the corrupt models ------------------------------------------------------------ */

/* Runs one EXPECTED.tsv row; records a failure and returns false when the
 * file was not refused as expected. */
static bool corrupt_row_refused(const char *file, const char *stage, const char *expect)
{
    char rel[256];
    snprintf(rel, sizeof rel, "corrupt/model/%s", file);
    const char *path = test_data_path(rel);
    loft_model *m = NULL;
    loft_status st = {0};
    loft_code rc = model_load(&m, path, &st);
    char msg[900];
    msg[0] = '\0';
    if (!strcmp(stage, "model")) {
        bool ok = (rc == LOFT_ERR_FORMAT || rc == LOFT_ERR_UNSUPPORTED) && !m &&
                  strstr(st.msg, expect) && strstr(st.msg, file);
        if (!ok)
            snprintf(msg, sizeof msg, "%s: model_load rc %d, message '%s', expected '%s'", file, rc,
                     st.msg, expect);
    } else if (rc != LOFT_OK) {
        snprintf(msg, sizeof msg, "%s: the model must load before its vocabulary: %s", file,
                 st.msg);
    } else {
        loft_vocab *v = NULL;
        rc = vocab_load(&v, model_gguf(m), &st);
        bool ok = (rc == LOFT_ERR_FORMAT || rc == LOFT_ERR_UNSUPPORTED) && !v &&
                  strstr(st.msg, expect) && strstr(st.msg, file);
        vocab_free(v);
        if (!ok)
            snprintf(msg, sizeof msg, "%s: vocab_load rc %d, message '%s', expected '%s'", file, rc,
                     st.msg, expect);
    }
    model_free(m);
    if (msg[0]) test_record_failure(__FILE__, __LINE__, msg);
    return msg[0] == '\0';
}

static void test_corrupt_models_are_refused(void)
{
    char *text = read_text(test_data_path("corrupt/model/EXPECTED.tsv"));
    CHECKF(text, "cannot read %s", test_data_path("corrupt/model/EXPECTED.tsv"));
    int rows = 0, model_rows = 0, vocab_rows = 0;
    static char listed[16384];
    strcpy(listed, "\n");
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *f[4];
        if (split_tabs(line, f, 4) != 3 || (strcmp(f[1], "model") && strcmp(f[1], "vocab"))) {
            free(text);
            CHECKF(false, "bad EXPECTED.tsv row '%s'", line);
        }
        corrupt_row_refused(f[0], f[1], f[2]);
        if (strlen(listed) + strlen(f[0]) + 2 < sizeof listed)
            snprintf(listed + strlen(listed), sizeof listed - strlen(listed), "%s\n", f[0]);
        rows++;
        model_rows += !strcmp(f[1], "model");
        vocab_rows += !strcmp(f[1], "vocab");
    }
    free(text);
    CHECKF(model_rows >= 40 && vocab_rows >= 15, "only %d model and %d vocab rows", model_rows,
           vocab_rows);
    /* Every file in the folder has a row, so none goes untested. */
    static char names[256][128];
    int n = list_gguf("corrupt/model", names, 256);
    CHECK(n == rows);
    for (int i = 0; i < n; i++) {
        char key[140];
        snprintf(key, sizeof key, "\n%s\n", names[i]);
        CHECKF(strstr(listed, key), "%s has no row in EXPECTED.tsv", names[i]);
    }
}

/* ---- fuzz findings ----------------------------------------------------------------- */

/* Inputs that once crashed a fuzz target (tests/fuzz/regress-model: models
 * whose weights make NaN attention scores, which reached an undefined
 * float-to-int conversion in the softmax's e^x). Each must be refused or
 * run its forward pass. */
static void test_fuzz_regressions_run(void)
{
    /* The contract of the fixed function. The old conversion also returned
     * NaN on x86, so only clang's UBSan (`make fuzz`, which replays
     * tests/fuzz/regress-model) sees the bug itself: gcc's -fsanitize=
     * undefined leaves float-cast-overflow out. */
    CHECK(isnan(kernels_expf_ggml(NAN)));
    CHECK(kernels_expf_ggml(-INFINITY) == 0.0f && kernels_expf_ggml(INFINITY) == INFINITY);
    CHECK(fabsf(kernels_expf_ggml(1.0f) - expf(1.0f)) < 1e-6f);

    char names[32][128];
    int n = list_gguf("fuzz/regress-model", names, 32);
    CHECKF(n >= 1, "no files in tests/fuzz/regress-model");
    for (int i = 0; i < n; i++) {
        char rel[200];
        snprintf(rel, sizeof rel, "fuzz/regress-model/%s", names[i]);
        loft_model *m = NULL;
        loft_status st = {0};
        if (model_load(&m, test_data_path(rel), &st) != LOFT_OK) continue;
        model_set_threads(m, 1, &st);
        const int32_t V = model_get_hparams(m)->n_vocab;
        kv_cache *kv = NULL;
        float *logits = malloc(2 * (size_t)V * sizeof(float));
        int32_t toks[2] = {0, V - 1};
        bool ok = logits && kv_cache_init(&kv, m, 8, &st) == LOFT_OK &&
                  model_forward(m, kv, toks, 2, logits, true, &st) == LOFT_OK;
        free(logits);
        kv_cache_free(kv);
        model_free(m);
        CHECKF(ok, "%s: %s", names[i], st.msg);
    }
    /* The adapter finding: the same NaN scores, reached through an adapter. */
    loft_model *m = load_and_run(test_data_path("fuzz/seed-model/llama-bpe.gguf"));
    if (!m) return;
    n = list_gguf("fuzz/regress-adapter", names, 32);
    bool ok = n >= 1;
    for (int i = 0; ok && i < n; i++) {
        char rel[200];
        snprintf(rel, sizeof rel, "fuzz/regress-adapter/%s", names[i]);
        lora_stack s;
        memset(&s, 0, sizeof s);
        loft_status st = {0};
        if (lora_stack_add(&s, test_data_path(rel), 0.5f, m, &st) == LOFT_OK &&
            lora_stack_attach(&s, m, &st) == LOFT_OK) {
            kv_cache *kv = NULL;
            float logits[2 * 64];
            int32_t toks[2] = {1, model_get_hparams(m)->n_vocab - 1};
            ok = model_get_hparams(m)->n_vocab <= 64 && kv_cache_init(&kv, m, 8, &st) == LOFT_OK &&
                 model_forward(m, kv, toks, 2, logits, true, &st) == LOFT_OK;
            kv_cache_free(kv);
        }
        model_set_adapter(m, NULL, NULL);
        lora_stack_free(&s);
    }
    model_free(m);
    CHECKF(ok, "%d files in tests/fuzz/regress-adapter, or a forward failed", n);
}

/* The dataset finding: a text segment that tokenizes to nothing (bytes the
 * vocabulary has no token for) before any token was stored made
 * src/train/dataset.c offset a NULL buffer. Each file of
 * tests/fuzz/regress-dataset is replayed as fuzz_dataset reads it (first
 * byte: options, the rest: the JSONL file), and one line shows the case. */
static void test_dataset_regressions_run(void)
{
    gguf_file *g = NULL;
    loft_vocab *v = NULL;
    loft_status st = {0};
    CHECKF(gguf_open(&g, test_data_path("fuzz/seed-model/llama-bpe.gguf"), &st) == LOFT_OK &&
               vocab_load(&v, g, &st) == LOFT_OK,
           "%s", st.msg);
    gguf_close(g);
    dataset_opts o = {.n_ctx = 16, .assistant_loss_only = false, .strict = false};
    static const char line[] = "{\"text\": \"zzz\"}";
    train_example ex;
    bool trunc = false;
    loft_code c = dataset_example_from_json(&ex, &trunc, line, sizeof line - 1, v, NULL, &o, &st);
    bool ok = c != LOFT_OK || ex.n >= 1;
    if (c == LOFT_OK) train_example_free(&ex);

    char names[32][128];
    int n = 0;
    DIR *d = opendir(test_data_path("fuzz/regress-dataset"));
    struct dirent *e;
    while (d && (e = readdir(d)) && n < 32)
        if (e->d_name[0] != '.' && strlen(e->d_name) < 128) strcpy(names[n++], e->d_name);
    if (d) closedir(d);
    char tmp[64];
    snprintf(tmp, sizeof tmp, "/tmp/loft-test-validate-%d.jsonl", (int)getpid());
    for (int i = 0; ok && i < n; i++) {
        char rel[200];
        snprintf(rel, sizeof rel, "fuzz/regress-dataset/%s", names[i]);
        char *text = read_text(test_data_path(rel));
        if (!text || !text[0]) {
            free(text);
            ok = false;
            break;
        }
        FILE *f = fopen(tmp, "wb");
        ok = f && fputs(text + 1, f) >= 0;
        if (f) fclose(f);
        const unsigned char opt = (unsigned char)text[0];
        free(text);
        loft_chat_template tmpl;
        memset(&tmpl, 0, sizeof tmpl);
        tmpl.kind = (loft_chat_kind)((opt >> 1) % LOFT_CHAT_KIND_COUNT);
        dataset_opts fo = {.n_ctx = 2 + (opt >> 4) * 3,
                           .assistant_loss_only = (opt & 0x04) != 0,
                           .strict = (opt & 0x40) != 0};
        train_dataset ds;
        if (ok && dataset_load(&ds, tmp, v, (opt & 0x80) ? NULL : &tmpl, &fo, &st) == LOFT_OK)
            dataset_free(&ds);
    }
    remove(tmp);
    vocab_free(v);
    CHECKF(ok && n >= 1, "dataset regressions: %d files, a replay failed", n);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"seed_models_load_and_run", test_seed_models_load_and_run},
        {"seed_adapters_attach", test_seed_adapters_attach},
        {"corrupt_models_are_refused", test_corrupt_models_are_refused},
        {"fuzz_regressions_run", test_fuzz_regressions_run},
        {"dataset_regressions_run", test_dataset_regressions_run},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
