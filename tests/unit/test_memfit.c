/*
 * Checks the memory estimate: its parts for SmolLM2 from the model's known
 * shape, size parsing, a missing key named in the error, and, for both
 * real models, the estimate against the peak RSS that `loft bench` measures
 * and reports for the same configuration (within 15%). A limit below the
 * estimate gives an OOM row instead of a load.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "bench/memfit.h"
#include "gguf/gguf.h"
#include "test.h"

#define SMOL "smollm2-135m-instruct-q4_1.gguf"
#define GEMMA "gemma-3-270m-q4_k_m.gguf"

static void test_parse_size(void)
{
    uint64_t v = 0;
    CHECK(memfit_parse_size("123456", &v) && v == 123456);
    CHECK(memfit_parse_size("512M", &v) && v == 512ull << 20);
    CHECK(memfit_parse_size("8G", &v) && v == 8ull << 30);
    CHECK(memfit_parse_size("8GiB", &v) && v == 8ull << 30);
    CHECK(memfit_parse_size("1.5g", &v) && v == 3ull << 29);
    CHECK(memfit_parse_size("64k", &v) && v == 65536);
    CHECK(!memfit_parse_size("", &v));
    CHECK(!memfit_parse_size("12X", &v));
    CHECK(!memfit_parse_size("-1G", &v));
    CHECK(!memfit_parse_size("8Gx", &v));
    char buf[96];
    memfit_oom_text(3ull << 30, 1ull << 29, buf, sizeof buf);
    CHECK(!strcmp(buf, "OOM (needs 3.00 GiB, has 0.50 GiB)"));
}

/* SmolLM2-135M: 30 layers, 3 kv heads of 64 dims: 384 key+value floats per
 * layer and position. */
static void test_estimate_parts(void)
{
    gguf_file *g = NULL;
    loft_status st;
    CHECKF(gguf_open(&g, test_model_path(SMOL), &st) == LOFT_OK, "%s", st.msg);
    memfit_config c = {.n_ctx = 1000, .n_batch = 512};
    memfit_estimate e, e2;
    loft_code rc = memfit_estimate_model(g, &c, &e, &st);
    c.n_ctx = 2000;
    loft_code rc2 = memfit_estimate_model(g, &c, &e2, &st);
    c.all_logits = true;
    memfit_estimate e3;
    loft_code rc3 = memfit_estimate_model(g, &c, &e3, &st);
    uint64_t file_size = g->file_size;
    gguf_close(g);
    CHECK(rc == LOFT_OK && rc2 == LOFT_OK && rc3 == LOFT_OK);
    CHECK(e.weights == file_size);
    CHECKF(e.kv_cache == 30ull * 1000 * 384 * 2 + 1000ull * 384 * 4, "kv %llu",
           (unsigned long long)e.kv_cache);
    CHECK(e2.kv_cache == 2 * e.kv_cache);
    CHECK(e.total == e.weights + e.kv_cache + e.buffers + e.overhead);
    /* Logits for every position of a 512 batch: 511 more rows of 49152 floats. */
    CHECK(e3.buffers - e2.buffers == 511ull * 49152 * 4);
    uint64_t have;
    CHECK(memfit_fits(&e, e.total, &have) && have == e.total);
    CHECK(!memfit_fits(&e, e.total - 1, &have));
}

static void test_missing_key(void)
{
    gguf_writer *w = gguf_writer_init(0);
    CHECK(w);
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_uint(w, "llama.embedding_length", GGUF_TYPE_UINT32, 64);
    char path[] = "/tmp/loft-test-memfit-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    loft_status st;
    loft_code rc = gguf_writer_write(w, path, &st);
    gguf_writer_free(w);
    CHECK(rc == LOFT_OK);
    gguf_file *g = NULL;
    rc = gguf_open(&g, path, &st);
    remove(path);
    CHECK(rc == LOFT_OK);
    memfit_config c = {.n_ctx = 16, .n_batch = 16};
    memfit_estimate e;
    rc = memfit_estimate_model(g, &c, &e, &st);
    gguf_close(g);
    CHECK(rc == LOFT_ERR_FORMAT && strstr(st.msg, "llama.block_count"));
}

/* Runs `loft bench` on model with extra arguments, expecting exit status
 * want_rc (1 when a row is refused as OOM), and returns the first result
 * object's numbers. */
static bool bench_numbers(const char *model, const char *extra, int want_rc, double *est,
                          double *rss, bool *oom, double *need, double *have)
{
    char cmd[1024], *out = NULL;
    snprintf(cmd, sizeof cmd,
             "%s bench -m %s -p 64 -n 0 -r 1 --no-warmup --no-hash --no-progress -o json %s "
             "2>/dev/null",
             test_loft_bin(), test_model_path(model), extra);
    int rc = test_run(cmd, &out);
    json_doc *doc = NULL;
    loft_status st;
    bool ok = rc == want_rc && out && json_parse(&doc, out, strlen(out), "bench output", &st) == LOFT_OK;
    if (!ok) fprintf(stderr, "    %s -> exit %d: %s\n", cmd, rc, out ? out : "");
    free(out);
    if (!ok) return false;
    const json_value *res = json_get(json_doc_root(doc), "results");
    const json_value *r = res && res->kind == JSON_ARRAY && res->n > 0 ? &res->items[0] : NULL;
    const json_value *e = json_get(r, "mem_estimate"), *p = json_get(r, "peak_rss"),
                     *o = json_get(r, "oom"), *n = json_get(r, "oom_need"),
                     *h = json_get(r, "oom_have");
    ok = e && p && o && n && h && o->kind == JSON_BOOL;
    if (ok) {
        *est = e->number;
        *rss = p->number;
        *oom = o->boolean;
        *need = n->number;
        *have = h->number;
    }
    json_doc_free(doc);
    return ok;
}

static void check_against_rss(const char *model)
{
    double est, rss, need, have;
    bool oom;
    CHECK(bench_numbers(model, "", 0, &est, &rss, &oom, &need, &have));
    fprintf(stderr, "    %s: estimate %.1f MiB, measured peak RSS %.1f MiB (%+.1f%%)\n", model,
            est / 1048576, rss / 1048576, 100 * (est - rss) / rss);
    CHECK(!oom && rss > 0);
    CHECKF(fabs(est - rss) <= 0.15 * rss, "estimate %.0f vs peak RSS %.0f", est, rss);
}

static void test_rss_smollm(void)
{
    check_against_rss(SMOL);
}

static void test_rss_gemma(void)
{
    check_against_rss(GEMMA);
}

static void test_mem_limit_refuses(void)
{
    double est, rss, need, have;
    bool oom;
    CHECK(bench_numbers(SMOL, "--mem-limit 64M", 1, &est, &rss, &oom, &need, &have));
    CHECK(oom && need == est && have == 64.0 * 1048576 && need > have);
    /* Not loaded: nothing was measured for the row. */
    CHECK(rss == 0);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"parse_size", test_parse_size},   {"estimate_parts", test_estimate_parts},
        {"missing_key", test_missing_key}, {"rss_smollm", test_rss_smollm},
        {"rss_gemma", test_rss_gemma},     {"mem_limit_refuses", test_mem_limit_refuses},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
