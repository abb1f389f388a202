/*
 * `loft info` against what the PyPI gguf package reads from the same files
 * (the JSON files in tests/golden/info/, made by scripts/gen-info-fixture.py), and its
 * answers to bad input.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "test.h"

static char *read_text_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = '\0';
        *len = (size_t)n;
    }
    return buf;
}

/* True when a and b hold the same JSON value (numbers compared exactly). */
static int json_equal(const json_value *a, const json_value *b)
{
    if (a->kind != b->kind) return 0;
    switch (a->kind) {
    case JSON_NULL: return 1;
    case JSON_BOOL: return a->boolean == b->boolean;
    case JSON_NUMBER: return a->number == b->number;
    case JSON_STRING: return a->str_len == b->str_len && !memcmp(a->str, b->str, a->str_len);
    case JSON_ARRAY:
        if (a->n != b->n) return 0;
        for (size_t i = 0; i < a->n; i++)
            if (!json_equal(&a->items[i], &b->items[i])) return 0;
        return 1;
    case JSON_OBJECT:
        /* every member of a must be in b with an equal value */
        for (size_t i = 0; i < a->n; i++) {
            const json_value *m = json_get(b, a->keys[i]);
            if (!m || !json_equal(&a->items[i], m)) return 0;
        }
        return 1;
    }
    return 0;
}

static const json_value *find_tensor(const json_value *tensors, const char *name)
{
    for (size_t i = 0; tensors && i < tensors->n; i++) {
        const char *n = json_get_str(&tensors->items[i], "name");
        if (n && !strcmp(n, name)) return &tensors->items[i];
    }
    return NULL;
}

static void check_model(const char *fixture_name)
{
    size_t len;
    char *fixture_text = read_text_file(test_data_path(fixture_name), &len);
    CHECKF(fixture_text, "cannot read %s", test_data_path(fixture_name));
    json_doc *fixture = NULL;
    loft_status st;
    CHECKF(json_parse(&fixture, fixture_text, len, fixture_name, &st) == LOFT_OK, "%s", st.msg);
    free(fixture_text);
    const json_value *want = json_doc_root(fixture);

    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s info --json %s", test_loft_bin(),
             test_model_path(json_get_str(want, "file")));
    int rc = test_run(cmd, &out);
    json_doc *got_doc = NULL;
    int ok = rc == 0 && out && json_parse(&got_doc, out, strlen(out), "loft info", &st) == LOFT_OK;
    free(out);
    if (!ok) json_doc_free(fixture);
    CHECKF(ok, "'%s' exited %d or printed no valid JSON", cmd, rc);
    const json_value *got = json_doc_root(got_doc);

    static const char *const same[] = {"architecture", "name",       "gguf_version", "file_size",
                                       "hparams",      "tokenizer",  "n_params",     "tensor_bytes"};
    int failures = 0;
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++) {
        const json_value *w = json_get(want, same[i]), *g = json_get(got, same[i]);
        if (!w || !g || !json_equal(w, g)) {
            fprintf(stderr, "    %s: '%s' differs from the gguf package's reading\n", fixture_name,
                    same[i]);
            failures++;
        }
    }
    const json_value *tensors = json_get(got, "tensors");
    const json_value *n_tensors = json_get(want, "n_tensors");
    if (!tensors || !n_tensors || (double)tensors->n != n_tensors->number) {
        fprintf(stderr, "    %s: tensor count differs\n", fixture_name);
        failures++;
    }
    const json_value *sample = json_get(want, "tensors_sample");
    for (size_t i = 0; sample && i < sample->n; i++) {
        const json_value *t = find_tensor(tensors, json_get_str(&sample->items[i], "name"));
        if (!t || !json_equal(&sample->items[i], t)) {
            fprintf(stderr, "    %s: tensor '%s' differs\n", fixture_name,
                    json_get_str(&sample->items[i], "name"));
            failures++;
        }
    }
    json_doc_free(got_doc);
    json_doc_free(fixture);
    CHECK(failures == 0);
}

static void test_smollm2_matches_gguf_package(void)
{
    check_model("golden/info/smollm2.json");
}

static void test_gemma3_matches_gguf_package(void)
{
    check_model("golden/info/gemma3.json");
}

static void test_text_output(void)
{
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s info %s", test_loft_bin(),
             test_model_path("gemma-3-270m-q4_k_m.gguf"));
    int rc = test_run(cmd, &out);
    CHECK(rc == 0 && out);
    int ok = strstr(out, "architecture  gemma3") && strstr(out, "sliding window") &&
             strstr(out, "512") && strstr(out, "token_embd.weight") && strstr(out, "Q8_0") &&
             strstr(out, "bytes/param") && strstr(out, "chat template");
    /* every line fits a terminal of 100 columns */
    size_t longest = 0, cur = 0;
    for (const char *p = out; *p; p++) {
        if (*p == '\n') {
            if (cur > longest) longest = cur;
            cur = 0;
        } else {
            cur++;
        }
    }
    free(out);
    CHECK(ok);
    CHECKF(longest <= 100, "a line of %zu characters", longest);
}

/* A bad invocation exits with want_rc, and stderr contains `expect`. */
static void check_bad(const char *args, int want_rc, const char *expect)
{
    char cmd[4096], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s info %s 2>&1 >/dev/null", test_loft_bin(), args);
    int rc = test_run(cmd, &out);
    CHECK(out);
    size_t lines = 0;
    for (const char *p = out; *p; p++) lines += *p == '\n';
    int ok = rc == want_rc && strstr(out, expect) != NULL;
    if (!ok) fprintf(stderr, "    'loft info %s' -> %d: %s", args, rc, out);
    free(out);
    CHECK(ok);
    /* runtime errors are one line; usage errors add the usage text */
    CHECKF(want_rc != 1 || lines == 1, "%zu lines on stderr", lines);
}

static void test_bad_input(void)
{
    check_bad("/nonexistent/model.gguf", 1, "/nonexistent/model.gguf");
    check_bad("tests/unit/test_info.c", 1, "test_info.c");
    check_bad("tests", 1, "tests");
    check_bad("", 2, "no model file given");
    check_bad("--bogus x.gguf", 2, "--bogus");
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"info_smollm2_matches_gguf_package", test_smollm2_matches_gguf_package},
        {"info_gemma3_matches_gguf_package", test_gemma3_matches_gguf_package},
        {"info_text_output", test_text_output},
        {"info_bad_input", test_bad_input},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
