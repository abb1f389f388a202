/*
 * Checks the GGUF reader and writer: writer->reader round trips of every
 * metadata type, the real models against what the Python `gguf` package
 * reads (tests/golden/gguf-models.tsv, scripts/gen-gguf-fixture.py), the
 * hand-made corrupt files (tests/corrupt/EXPECTED.tsv, make-corrupt.py),
 * I/O errors, atomic writes on a full disk, and a file the writer made read
 * back by the Python reference reader (tests/py/check_gguf_file.py).
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gguf/gguf.h"
#include "quant/quant.h"
#include "test.h"

/* ---- helpers ---------------------------------------------------------------- */

static char tmp_dir[64];

/* A fresh directory per process for the files tests write. */
static const char *tmp_path(const char *name)
{
    static char buf[256];
    if (!tmp_dir[0]) {
        snprintf(tmp_dir, sizeof tmp_dir, "/tmp/loft-test-gguf-XXXXXX");
        if (!mkdtemp(tmp_dir)) {
            perror("mkdtemp");
            abort();
        }
    }
    snprintf(buf, sizeof buf, "%s/%s", tmp_dir, name);
    return buf;
}

/* Byte i of test tensor k: the same formula as tests/py/check_gguf_file.py. */
static void fill_pattern(uint8_t *p, size_t n, int k)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)((i * 31 + (size_t)k * 7 + 3) & 0xFF);
}

static bool str_is(gguf_str s, const char *c)
{
    return gguf_str_eq(s, c);
}

/* ---- the shared spec (keep in sync with tests/py/check_gguf_file.py) -------- */

#define SPEC_ALIGNMENT 64
#define SPEC_TENSORS 3

static uint8_t spec_data[SPEC_TENSORS][512];
static const struct {
    const char *name;
    uint32_t type;
    int64_t ne[2];
    uint64_t nbytes;
} spec_tensors[SPEC_TENSORS] = {
    {"t.f32", LOFT_TYPE_F32, {5, 3}, 5 * 3 * 4},
    {"t.f16", LOFT_TYPE_F16, {8, 2}, 8 * 2 * 2},
    {"t.q8_0", LOFT_TYPE_Q8_0, {64, 3}, 2 * 34 * 3},
};

static const char *spec_strs[] = {"alpha", "", "gamma \xce\xb4"};
static const int32_t spec_i32[] = {-1, 0, 7, 2147483647};
static const float spec_f32[] = {0.5f, -2.25f};
static const uint8_t spec_bool[] = {1, 0, 1};

/* Adds the spec's nested arrays ([["a","b"],[],["c"]] and [[1,2,3],[255]]). */
static loft_code add_nested(gguf_writer *w)
{
    static const uint8_t b1[] = {1, 2, 3}, b2[] = {255};
    gguf_str s_ab[2] = {{1, "a"}, {1, "b"}}, s_c[1] = {{1, "c"}};
    gguf_value strs[3], bytes[2];
    memset(strs, 0, sizeof strs);
    memset(bytes, 0, sizeof bytes);
    for (int i = 0; i < 3; i++) {
        strs[i].type = GGUF_TYPE_ARRAY;
        strs[i].v.arr.elem_type = GGUF_TYPE_STRING;
    }
    strs[0].v.arr.count = 2;
    strs[0].v.arr.strs = s_ab;
    strs[2].v.arr.count = 1;
    strs[2].v.arr.strs = s_c;
    for (int i = 0; i < 2; i++) {
        bytes[i].type = GGUF_TYPE_ARRAY;
        bytes[i].v.arr.elem_type = GGUF_TYPE_UINT8;
    }
    bytes[0].v.arr.count = 3;
    bytes[0].v.arr.raw = b1;
    bytes[1].v.arr.count = 1;
    bytes[1].v.arr.raw = b2;
    gguf_value outer = {.type = GGUF_TYPE_ARRAY};
    outer.v.arr.elem_type = GGUF_TYPE_ARRAY;
    outer.v.arr.count = 3;
    outer.v.arr.items = strs;
    loft_code rc = gguf_writer_set_value(w, "py.arr_arr_str", &outer);
    if (rc != LOFT_OK) return rc;
    outer.v.arr.count = 2;
    outer.v.arr.items = bytes;
    return gguf_writer_set_value(w, "py.arr_arr_u8", &outer);
}

/* Writes the spec file; returns false if any writer call failed. */
static bool write_spec(const char *path, loft_status *st)
{
    gguf_writer *w = gguf_writer_init(SPEC_ALIGNMENT);
    if (!w) return false;
    int bad = 0;
    bad |= gguf_writer_set_uint(w, "py.u8", GGUF_TYPE_UINT8, 250);
    bad |= gguf_writer_set_int(w, "py.i8", GGUF_TYPE_INT8, -120);
    bad |= gguf_writer_set_uint(w, "py.u16", GGUF_TYPE_UINT16, 65000);
    bad |= gguf_writer_set_int(w, "py.i16", GGUF_TYPE_INT16, -32000);
    bad |= gguf_writer_set_uint(w, "py.u32", GGUF_TYPE_UINT32, 4000000000u);
    bad |= gguf_writer_set_int(w, "py.i32", GGUF_TYPE_INT32, -2000000000);
    bad |= gguf_writer_set_float(w, "py.f32", GGUF_TYPE_FLOAT32, 0.15625);
    bad |= gguf_writer_set_bool(w, "py.bool", true);
    bad |= gguf_writer_set_str(w, "py.str", "h\xc3\xa9llo w\xc3\xb6rld");
    bad |= gguf_writer_set_uint(w, "py.u64", GGUF_TYPE_UINT64, (UINT64_C(1) << 63) + 5);
    bad |= gguf_writer_set_int(w, "py.i64", GGUF_TYPE_INT64, -(INT64_C(1) << 62));
    bad |= gguf_writer_set_float(w, "py.f64", GGUF_TYPE_FLOAT64, 3.141592653589793);
    uint8_t i32le[sizeof spec_i32], f32le[sizeof spec_f32];
    memcpy(i32le, spec_i32, sizeof i32le); /* the test hosts are little-endian */
    memcpy(f32le, spec_f32, sizeof f32le);
    bad |= gguf_writer_set_array(w, "py.arr_i32", GGUF_TYPE_INT32, i32le, 4);
    bad |= gguf_writer_set_array(w, "py.arr_f32", GGUF_TYPE_FLOAT32, f32le, 2);
    bad |= gguf_writer_set_array(w, "py.arr_bool", GGUF_TYPE_BOOL, spec_bool, 3);
    bad |= gguf_writer_set_str_array(w, "py.arr_str", spec_strs, 3);
    bad |= add_nested(w);
    bad |= gguf_writer_set_array(w, "py.empty_arr", GGUF_TYPE_UINT64, NULL, 0);
    for (int k = 0; k < SPEC_TENSORS; k++) {
        fill_pattern(spec_data[k], spec_tensors[k].nbytes, k);
        bad |= gguf_writer_add_tensor(w, spec_tensors[k].name, spec_tensors[k].type, 2,
                                      spec_tensors[k].ne, spec_data[k], spec_tensors[k].nbytes);
    }
    bool ok = !bad && gguf_writer_write(w, path, st) == LOFT_OK;
    gguf_writer_free(w);
    return ok;
}

/* ---- (1) round trip ------------------------------------------------------------ */

static void test_roundtrip_every_type(void)
{
    loft_status st;
    const char *path = tmp_path("spec.gguf");
    CHECKF(write_spec(path, &st), "write_spec: %s", st.msg);
    gguf_file *g = NULL;
    CHECKF(gguf_open(&g, path, &st) == LOFT_OK, "%s", st.msg);
    CHECK(g->version == 3 && g->alignment == SPEC_ALIGNMENT && g->n_kv == 20 &&
          g->n_tensors == SPEC_TENSORS);
    CHECK(str_is(g->kv[0].key, "general.alignment")); /* added first by the writer */
    CHECK(str_is(g->kv[1].key, "py.u8") && str_is(g->kv[19].key, "py.empty_arr"));

    uint64_t u;
    int64_t i;
    double d;
    bool b;
    gguf_str s;
    CHECK(gguf_get_uint(g, "py.u8", &u) && u == 250);
    CHECK(gguf_get_int(g, "py.i8", &i) && i == -120);
    CHECK(gguf_get_uint(g, "py.u16", &u) && u == 65000);
    CHECK(gguf_get_int(g, "py.i16", &i) && i == -32000);
    CHECK(gguf_get_uint(g, "py.u32", &u) && u == 4000000000u);
    CHECK(gguf_get_int(g, "py.u32", &i) && i == 4000000000); /* widened */
    CHECK(gguf_get_int(g, "py.i32", &i) && i == -2000000000);
    CHECK(!gguf_get_uint(g, "py.i32", &u)); /* negative: no lossless uint */
    CHECK(gguf_get_float(g, "py.f32", &d) && d == 0.15625);
    CHECK(gguf_get_float(g, "py.u16", &d) && d == 65000.0);
    CHECK(gguf_get_bool(g, "py.bool", &b) && b);
    CHECK(!gguf_get_bool(g, "py.u8", &b));
    CHECK(gguf_get_str(g, "py.str", &s) && str_is(s, "h\xc3\xa9llo w\xc3\xb6rld"));
    CHECK(gguf_get_uint(g, "py.u64", &u) && u == (UINT64_C(1) << 63) + 5);
    CHECK(!gguf_get_int(g, "py.u64", &i));   /* above INT64_MAX */
    CHECK(!gguf_get_float(g, "py.u64", &d)); /* not exact in a double */
    CHECK(gguf_get_int(g, "py.i64", &i) && i == -(INT64_C(1) << 62));
    CHECK(gguf_get_float(g, "py.f64", &d) && d == 3.141592653589793);
    CHECK(!gguf_get_str(g, "py.u8", &s) && !gguf_get_uint(g, "no.such.key", &u));
    CHECK(gguf_find_key(g, "py.f64") == 12 && gguf_find_key(g, "py") == -1);

    const gguf_array *a = gguf_get_array(g, "py.arr_i32");
    CHECK(a && a->elem_type == GGUF_TYPE_INT32 && a->count == 4);
    for (int k = 0; k < 4; k++)
        CHECK(gguf_array_get_int(a, (uint64_t)k) == spec_i32[k]);
    a = gguf_get_array(g, "py.arr_f32");
    CHECK(a && a->count == 2 && gguf_array_get_float(a, 0) == 0.5 &&
          gguf_array_get_float(a, 1) == -2.25 && gguf_array_get_int(a, 1) == -2);
    a = gguf_get_array(g, "py.arr_bool");
    CHECK(a && a->elem_type == GGUF_TYPE_BOOL && a->count == 3 && gguf_array_get_int(a, 0) == 1 &&
          gguf_array_get_int(a, 1) == 0);
    a = gguf_get_array(g, "py.arr_str");
    CHECK(a && a->elem_type == GGUF_TYPE_STRING && a->count == 3 && a->strs);
    for (int k = 0; k < 3; k++)
        CHECK(str_is(a->strs[k], spec_strs[k]));
    a = gguf_get_array(g, "py.arr_arr_str");
    CHECK(a && a->elem_type == GGUF_TYPE_ARRAY && a->count == 3 && a->items);
    CHECK(a->items[0].v.arr.elem_type == GGUF_TYPE_STRING && a->items[0].v.arr.count == 2);
    CHECK(str_is(a->items[0].v.arr.strs[1], "b") && a->items[1].v.arr.count == 0);
    CHECK(a->items[2].v.arr.count == 1 && str_is(a->items[2].v.arr.strs[0], "c"));
    a = gguf_get_array(g, "py.arr_arr_u8");
    CHECK(a && a->count == 2 && a->items[0].v.arr.count == 3 && a->items[1].v.arr.count == 1);
    CHECK(gguf_array_get_int(&a->items[0].v.arr, 2) == 3 &&
          gguf_array_get_int(&a->items[1].v.arr, 0) == 255);
    a = gguf_get_array(g, "py.empty_arr");
    CHECK(a && a->elem_type == GGUF_TYPE_UINT64 && a->count == 0);

    CHECK(g->data_offset % SPEC_ALIGNMENT == 0);
    for (int k = 0; k < SPEC_TENSORS; k++) {
        const gguf_tensor_info *t = gguf_find_tensor(g, spec_tensors[k].name);
        CHECK(t && t == &g->tensors[k]);
        CHECK(t->type == spec_tensors[k].type && t->n_dims == 2);
        CHECK(t->ne[0] == spec_tensors[k].ne[0] && t->ne[1] == spec_tensors[k].ne[1] &&
              t->ne[2] == 1 && t->ne[3] == 1);
        CHECK(t->nbytes == spec_tensors[k].nbytes && t->offset % SPEC_ALIGNMENT == 0);
        CHECK(memcmp(t->data, spec_data[k], t->nbytes) == 0);
    }
    CHECK(gguf_find_tensor(g, "t.f3") == NULL);
    gguf_close(g);
}

/* Copying every value and tensor a reader returns gives the same bytes. */
static void test_copy_through_reader_is_identical(void)
{
    loft_status st;
    const char *a_path = tmp_path("copy-a.gguf");
    CHECKF(write_spec(a_path, &st), "%s", st.msg);
    gguf_file *g = NULL;
    CHECKF(gguf_open(&g, a_path, &st) == LOFT_OK, "%s", st.msg);
    gguf_writer *w = gguf_writer_init(0);
    CHECK(w);
    int bad = 0;
    for (uint64_t k = 0; k < g->n_kv; k++) {
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)g->kv[k].key.len, g->kv[k].key.data);
        bad |= gguf_writer_set_value(w, key, &g->kv[k].value);
    }
    for (uint64_t k = 0; k < g->n_tensors; k++) {
        const gguf_tensor_info *t = &g->tensors[k];
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)t->name.len, t->name.data);
        bad |= gguf_writer_add_tensor(w, name, t->type, t->n_dims, t->ne, t->data, t->nbytes);
    }
    const char *b_path = tmp_path("copy-b.gguf");
    loft_code rc = bad ? LOFT_ERR_ARG : gguf_writer_write(w, b_path, &st);
    gguf_writer_free(w);
    gguf_close(g);
    CHECKF(rc == LOFT_OK, "%s", st.msg);
    size_t na, nb;
    unsigned char *fa = test_read_file(a_path, &na), *fb = test_read_file(tmp_path("copy-b.gguf"), &nb);
    bool same = fa && fb && na == nb && memcmp(fa, fb, na) == 0;
    free(fa);
    free(fb);
    CHECK(same);
}

/* Tensors of several types and sizes at several alignments. */
static void test_roundtrip_alignments(void)
{
    static const uint64_t aligns[] = {1, 8, 32, 256, 4096};
    static const struct {
        const char *name;
        uint32_t type;
        uint32_t n_dims;
        int64_t ne[4];
    } ts[] = {
        {"f32", LOFT_TYPE_F32, 1, {3, 1, 1, 1}},     {"q4_k", LOFT_TYPE_Q4_K, 2, {256, 3, 1, 1}},
        {"i8", LOFT_TYPE_I8, 3, {5, 1, 7, 1}},       {"empty", LOFT_TYPE_F16, 2, {0, 4, 1, 1}},
        {"q6_k", LOFT_TYPE_Q6_K, 4, {512, 1, 2, 1}}, {"bf16", LOFT_TYPE_BF16, 1, {33, 1, 1, 1}},
    };
    enum { NT = sizeof ts / sizeof ts[0] };
    static uint8_t data[NT][4096];
    uint64_t nbytes[NT];
    for (int k = 0; k < NT; k++) {
        const loft_type_traits *tt = loft_type_get(ts[k].type);
        CHECK(tt);
        uint64_t rows = (uint64_t)(ts[k].ne[1] * ts[k].ne[2] * ts[k].ne[3]);
        nbytes[k] = (uint64_t)ts[k].ne[0] / tt->block_size * tt->type_size * rows;
        CHECK(nbytes[k] <= sizeof data[k]);
        fill_pattern(data[k], nbytes[k], k + 10);
    }
    for (size_t ai = 0; ai < sizeof aligns / sizeof aligns[0]; ai++) {
        loft_status st;
        gguf_writer *w = gguf_writer_init(aligns[ai]);
        CHECK(w);
        CHECK(gguf_writer_set_str(w, "general.architecture", "test") == LOFT_OK);
        CHECK(gguf_writer_set_uint(w, "x", GGUF_TYPE_UINT32, 1) == LOFT_OK);
        CHECK(gguf_writer_set_uint(w, "x", GGUF_TYPE_UINT8, 2) == LOFT_OK); /* replaces */
        for (int k = 0; k < NT; k++)
            CHECK(gguf_writer_add_tensor(w, ts[k].name, ts[k].type, ts[k].n_dims, ts[k].ne, data[k],
                                         nbytes[k]) == LOFT_OK);
        const char *path = tmp_path("align.gguf");
        loft_code rc = gguf_writer_write(w, path, &st);
        gguf_writer_free(w);
        CHECKF(rc == LOFT_OK, "%s", st.msg);
        gguf_file *g = NULL;
        CHECKF(gguf_open(&g, path, &st) == LOFT_OK, "alignment %llu: %s",
               (unsigned long long)aligns[ai], st.msg);
        bool default_align = aligns[ai] == GGUF_DEFAULT_ALIGNMENT;
        CHECK(g->alignment == aligns[ai]);
        CHECK(g->n_kv == (default_align ? 2u : 3u));
        CHECK((gguf_find_key(g, "general.alignment") >= 0) == !default_align);
        uint64_t x;
        CHECK(gguf_get_uint(g, "x", &x) && x == 2 && gguf_get(g, "x")->type == GGUF_TYPE_UINT8);
        CHECK(g->n_tensors == NT && g->data_offset % aligns[ai] == 0);
        for (int k = 0; k < NT; k++) {
            const gguf_tensor_info *t = &g->tensors[k];
            CHECK(str_is(t->name, ts[k].name) && t->type == ts[k].type &&
                  t->n_dims == ts[k].n_dims);
            for (int dd = 0; dd < 4; dd++)
                CHECK(t->ne[dd] == ts[k].ne[dd]);
            CHECK(t->nbytes == nbytes[k] && t->offset % aligns[ai] == 0);
            CHECK(nbytes[k] == 0 || memcmp(t->data, data[k], nbytes[k]) == 0);
        }
        gguf_close(g);
    }
}

static void test_writer_refuses_bad_arguments(void)
{
    CHECK(gguf_writer_init(48) == NULL);
    gguf_writer *w = gguf_writer_init(0);
    CHECK(w);
    uint8_t q8[34] = {0};
    int64_t ne[4] = {32, 1, 1, 1};
    CHECK(gguf_writer_set_uint(w, "a", GGUF_TYPE_UINT8, 256) == LOFT_ERR_ARG);
    CHECK(gguf_writer_set_uint(w, "a", GGUF_TYPE_INT32, 1) == LOFT_ERR_ARG);
    CHECK(gguf_writer_set_int(w, "a", GGUF_TYPE_INT8, 128) == LOFT_ERR_ARG);
    CHECK(gguf_writer_set_int(w, "a", GGUF_TYPE_INT16, -32769) == LOFT_ERR_ARG);
    CHECK(gguf_writer_set_float(w, "a", GGUF_TYPE_UINT32, 1.0) == LOFT_ERR_ARG);
    CHECK(gguf_writer_set_str(w, "", "x") == LOFT_ERR_ARG);
    CHECK(gguf_writer_set_str(w, NULL, "x") == LOFT_ERR_ARG);
    CHECK(gguf_writer_set_array(w, "a", GGUF_TYPE_STRING, q8, 1) == LOFT_ERR_ARG);
    uint8_t not_bool = 2;
    CHECK(gguf_writer_set_array(w, "a", GGUF_TYPE_BOOL, &not_bool, 1) == LOFT_ERR_ARG);
    CHECK(gguf_writer_set_uint(w, "general.alignment", GGUF_TYPE_UINT32, 24) == LOFT_ERR_ARG);
    CHECK(gguf_writer_set_uint(w, "general.alignment", GGUF_TYPE_UINT64, 64) == LOFT_ERR_ARG);
    CHECK(gguf_writer_add_tensor(w, "t", LOFT_TYPE_Q8_0, 1, ne, q8, 33) == LOFT_ERR_ARG);
    CHECK(gguf_writer_add_tensor(w, "t", 99, 1, ne, q8, 34) == LOFT_ERR_ARG);
    CHECK(gguf_writer_add_tensor(w, "t", LOFT_TYPE_Q8_0, 0, ne, q8, 34) == LOFT_ERR_ARG);
    CHECK(gguf_writer_add_tensor(w, "t", LOFT_TYPE_Q8_0, 5, ne, q8, 34) == LOFT_ERR_ARG);
    CHECK(gguf_writer_add_tensor(w, "", LOFT_TYPE_Q8_0, 1, ne, q8, 34) == LOFT_ERR_ARG);
    CHECK(gguf_writer_add_tensor(w, "t", LOFT_TYPE_Q8_0, 1, ne, NULL, 34) == LOFT_ERR_ARG);
    int64_t odd[1] = {31}, neg[2] = {32, -1};
    CHECK(gguf_writer_add_tensor(w, "t", LOFT_TYPE_Q8_0, 1, odd, q8, 34) == LOFT_ERR_ARG);
    CHECK(gguf_writer_add_tensor(w, "t", LOFT_TYPE_Q8_0, 2, neg, q8, 34) == LOFT_ERR_ARG);
    CHECK(gguf_writer_add_tensor(w, "t", LOFT_TYPE_Q8_0, 1, ne, q8, 34) == LOFT_OK);
    CHECK(gguf_writer_add_tensor(w, "t", LOFT_TYPE_Q8_0, 1, ne, q8, 34) == LOFT_ERR_ARG);
    loft_status st;
    CHECK(gguf_writer_write(w, "/nonexistent-dir/x.gguf", &st) == LOFT_ERR_IO);
    CHECKF(strstr(st.msg, "/nonexistent-dir/x.gguf") && strstr(st.msg, "cannot create"), "%s",
           st.msg);
    /* Setting general.alignment moves the layout with it. */
    CHECK(gguf_writer_set_uint(w, "general.alignment", GGUF_TYPE_UINT32, 128) == LOFT_OK);
    CHECK(gguf_writer_write(w, tmp_path("a128.gguf"), &st) == LOFT_OK);
    gguf_writer_free(w);
    gguf_file *g = NULL;
    CHECKF(gguf_open(&g, tmp_path("a128.gguf"), &st) == LOFT_OK, "%s", st.msg);
    CHECK(g->alignment == 128 && g->data_offset % 128 == 0);
    gguf_close(g);
}

/* A write that hits the file-size limit (as a full disk would) fails with an
 * I/O error, removes its temp file and leaves the old file as it was. */
static void test_writer_full_disk_keeps_old_file(void)
{
    const char *path = tmp_path("full.gguf");
    FILE *f = fopen(path, "wb");
    CHECK(f);
    fputs("old contents", f);
    fclose(f);
    static uint8_t big[1 << 16];
    int64_t ne[1] = {(int64_t)sizeof big / 4};
    gguf_writer *w = gguf_writer_init(0);
    CHECK(w);
    CHECK(gguf_writer_add_tensor(w, "big", LOFT_TYPE_F32, 1, ne, big, sizeof big) == LOFT_OK);

    struct rlimit old;
    CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
    struct rlimit small = old;
    small.rlim_cur = 8192;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0);
    loft_status st;
    loft_code rc = gguf_writer_write(w, path, &st);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_handler);
    gguf_writer_free(w);

    CHECKF(rc == LOFT_ERR_IO, "rc %d: %s", rc, st.msg);
    CHECKF(strstr(st.msg, path) && strstr(st.msg, ".tmp."), "%s", st.msg);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(access(tmp, F_OK) != 0);
    size_t n;
    unsigned char *bytes = test_read_file(path, &n);
    bool intact = bytes && n == strlen("old contents") && memcmp(bytes, "old contents", n) == 0;
    free(bytes);
    CHECK(intact);
}

/* ---- (2) the real models ------------------------------------------------------- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* True when the bytes equal the hex string. */
static bool hex_eq(const void *p, uint64_t n, const char *hex)
{
    const unsigned char *b = p;
    if (strlen(hex) != 2 * n) return false;
    for (uint64_t i = 0; i < n; i++)
        if (hex_value(hex[2 * i]) * 16 + hex_value(hex[2 * i + 1]) != b[i]) return false;
    return true;
}

static bool scalar_matches(const gguf_file *g, const char *key, const char *type, const char *text)
{
    const gguf_value *v = gguf_get(g, key);
    if (!v || strcmp(gguf_type_name(v->type), type) != 0) return false;
    uint64_t u;
    int64_t i;
    double d;
    bool b;
    gguf_str s;
    if (!strcmp(type, "string")) return gguf_get_str(g, key, &s) && hex_eq(s.data, s.len, text);
    if (!strcmp(type, "bool")) return gguf_get_bool(g, key, &b) && b == (text[0] == '1');
    if (!strncmp(type, "float", 5)) return gguf_get_float(g, key, &d) && d == strtod(text, NULL);
    if (type[0] == 'u') return gguf_get_uint(g, key, &u) && u == strtoull(text, NULL, 10);
    return gguf_get_int(g, key, &i) && i == strtoll(text, NULL, 10);
}

static bool element_matches(const gguf_array *a, uint64_t i, const char *text)
{
    if (!strcmp(text, "-")) return true;
    if (a->elem_type == GGUF_TYPE_STRING) return hex_eq(a->strs[i].data, a->strs[i].len, text);
    if (a->elem_type == GGUF_TYPE_FLOAT32 || a->elem_type == GGUF_TYPE_FLOAT64)
        return gguf_array_get_float(a, i) == strtod(text, NULL);
    return gguf_array_get_int(a, i) == strtoll(text, NULL, 10);
}

/* Splits line at tabs into at most max fields; returns the count. */
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

static void test_models_match_python_reader(void)
{
    size_t size;
    char *text = (char *)test_read_file(test_data_path("golden/gguf-models.tsv"), &size);
    CHECKF(text, "cannot read %s", test_data_path("golden/gguf-models.tsv"));
    char *buf = realloc(text, size + 1);
    CHECK(buf);
    buf[size] = '\0';
    gguf_file *g = NULL;
    uint64_t kv_i = 0, t_i = 0;
    int files = 0, facts = 0;
    char *save = NULL;
    bool ok = true;
    char why[600] = "";
    for (char *line = strtok_r(buf, "\n", &save); line && ok; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *f[9];
        int n = split_tabs(line, f, 9);
        facts++;
        if (!strcmp(f[0], "file") && n == 2) {
            gguf_close(g);
            g = NULL;
            loft_status st;
            if (gguf_open(&g, test_model_path(f[1]), &st) != LOFT_OK) {
                snprintf(why, sizeof why, "%s", st.msg);
                ok = false;
            }
            kv_i = t_i = 0;
            files++;
        } else if (!g) {
            snprintf(why, sizeof why, "fact before any file line");
            ok = false;
        } else if (!strcmp(f[0], "count") && n == 3) {
            uint64_t want = strtoull(f[2], NULL, 10), got = 0;
            if (!strcmp(f[1], "version"))
                got = g->version;
            else if (!strcmp(f[1], "n_kv"))
                got = g->n_kv;
            else if (!strcmp(f[1], "n_tensors"))
                got = g->n_tensors;
            else if (!strcmp(f[1], "alignment"))
                got = g->alignment;
            else if (!strcmp(f[1], "data_offset"))
                got = g->data_offset;
            ok = got == want;
            snprintf(why, sizeof why, "%s %s: got %llu, want %llu", g->path, f[1],
                     (unsigned long long)got, (unsigned long long)want);
        } else if (!strcmp(f[0], "kv") && n == 4) {
            ok = gguf_find_key(g, f[1]) == (int64_t)kv_i++ && scalar_matches(g, f[1], f[2], f[3]);
            snprintf(why, sizeof why, "%s: key %s (%s %.60s)", g->path, f[1], f[2], f[3]);
        } else if (!strcmp(f[0], "kvarr") && n == 6) {
            const gguf_array *a = gguf_get_array(g, f[1]);
            uint64_t count = strtoull(f[3], NULL, 10);
            ok = gguf_find_key(g, f[1]) == (int64_t)kv_i++ && a &&
                 !strcmp(gguf_type_name(a->elem_type), f[2]) && a->count == count &&
                 (count == 0 ||
                  (element_matches(a, 0, f[4]) && element_matches(a, count - 1, f[5])));
            snprintf(why, sizeof why, "%s: array %s", g->path, f[1]);
        } else if (!strcmp(f[0], "tensor") && n == 8) {
            ok = t_i < g->n_tensors;
            const gguf_tensor_info *t = ok ? &g->tensors[t_i++] : NULL;
            char ne[128] = "";
            for (uint32_t dd = 0; t && dd < t->n_dims; dd++)
                snprintf(ne + strlen(ne), sizeof ne - strlen(ne), "%s%lld", dd ? "," : "",
                         (long long)t->ne[dd]);
            uint64_t nb = strtoull(f[5], NULL, 10), k = nb < 16 ? nb : 16;
            ok = ok && str_is(t->name, f[1]) && t->type == strtoul(f[2], NULL, 10) &&
                 !strcmp(ne, f[3]) && t->offset == strtoull(f[4], NULL, 10) && t->nbytes == nb &&
                 gguf_find_tensor(g, f[1]) == t && hex_eq(t->data, k, f[6]) &&
                 hex_eq((const uint8_t *)t->data + nb - k, k, f[7]);
            snprintf(why, sizeof why, "%s: tensor %s (%s %s)", g->path, f[1], f[2], f[3]);
        } else {
            snprintf(why, sizeof why, "unknown fixture line '%s'", f[0]);
            ok = false;
        }
    }
    bool all_seen = g && kv_i == g->n_kv && t_i == g->n_tensors;
    gguf_close(g);
    free(buf);
    CHECKF(ok, "%s", why);
    CHECK(files == 2 && facts > 500 && all_seen);
}

/* Hyperparameters a model loader reads, through the typed getters. */
static void test_models_hyperparameters(void)
{
    loft_status st;
    gguf_file *g = NULL;
    CHECKF(gguf_open(&g, test_model_path("smollm2-135m-instruct-q4_1.gguf"), &st) == LOFT_OK, "%s",
           st.msg);
    uint64_t u;
    double d;
    gguf_str s;
    CHECK(g->n_kv == 33 && g->n_tensors == 272);
    CHECK(gguf_get_str(g, "general.architecture", &s) && str_is(s, "llama"));
    CHECK(gguf_get_uint(g, "llama.block_count", &u) && u == 30);
    CHECK(gguf_get_uint(g, "llama.embedding_length", &u) && u == 576);
    CHECK(gguf_get_float(g, "llama.rope.freq_base", &d) && d == 100000.0);
    const gguf_tensor_info *t = gguf_find_tensor(g, "token_embd.weight");
    CHECK(t && t->type == LOFT_TYPE_Q8_0 && t->ne[0] == 576 && t->ne[1] == 49152);
    gguf_close(g);
    CHECKF(gguf_open(&g, test_model_path("gemma-3-270m-q4_k_m.gguf"), &st) == LOFT_OK, "%s",
           st.msg);
    CHECK(g->n_kv == 33 && g->n_tensors == 236);
    CHECK(gguf_get_str(g, "general.architecture", &s) && str_is(s, "gemma3"));
    CHECK(gguf_get_uint(g, "gemma3.attention.key_length", &u) && u == 256);
    CHECK(gguf_get_float(g, "gemma3.attention.layer_norm_rms_epsilon", &d) && (float)d == 1e-6f);
    const gguf_array *a = gguf_get_array(g, "tokenizer.ggml.tokens");
    CHECK(a && a->count == 262144 && str_is(a->strs[2], "<bos>"));
    gguf_close(g);
}

/* ---- (3) corrupt files ----------------------------------------------------------- */

static void test_corrupt_files_are_refused(void)
{
    size_t size;
    char *text = (char *)test_read_file(test_data_path("corrupt/EXPECTED.tsv"), &size);
    CHECKF(text, "cannot read %s", test_data_path("corrupt/EXPECTED.tsv"));
    char *buf = realloc(text, size + 1);
    CHECK(buf);
    buf[size] = '\0';
    int rows = 0;
    char listed[8192] = "\n";
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *f[3];
        if (split_tabs(line, f, 3) != 2) {
            free(buf);
            CHECKF(false, "bad EXPECTED.tsv row '%s'", line);
        }
        char rel[256];
        snprintf(rel, sizeof rel, "corrupt/%s", f[0]);
        gguf_file *g = NULL;
        loft_status st = {0};
        loft_code rc = gguf_open(&g, test_data_path(rel), &st);
        gguf_close(g);
        bool ok = (rc == LOFT_ERR_FORMAT || rc == LOFT_ERR_UNSUPPORTED) && !g &&
                  strstr(st.msg, f[1]) && strstr(st.msg, f[0]);
        if (!ok) {
            char msg[700];
            snprintf(msg, sizeof msg, "%s: rc %d, message '%s', expected '%s'", f[0], rc, st.msg,
                     f[1]);
            test_record_failure(__FILE__, __LINE__, msg);
        }
        snprintf(listed + strlen(listed), sizeof listed - strlen(listed), "%s\n", f[0]);
        rows++;
    }
    free(buf);
    CHECKF(rows >= 30, "only %d rows in EXPECTED.tsv", rows);
    /* Every .gguf in the folder has a row, so none goes untested. */
    DIR *dir = opendir(test_data_path("corrupt"));
    CHECK(dir);
    int files = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 5, ".gguf") != 0) continue;
        char needle[300];
        snprintf(needle, sizeof needle, "\n%s\n", e->d_name);
        if (!strstr(listed, needle)) {
            char msg[400];
            snprintf(msg, sizeof msg, "%s has no row in EXPECTED.tsv", e->d_name);
            test_record_failure(__FILE__, __LINE__, msg);
        }
        files++;
    }
    closedir(dir);
    CHECK(files == rows);
}

/* Every proper prefix of a valid file is refused (and none is read past). */
static void test_every_prefix_is_refused(void)
{
    size_t size;
    unsigned char *bytes = test_read_file(test_data_path("fuzz/seed-gguf/every-type.gguf"), &size);
    CHECK(bytes && size > 100);
    loft_status st;
    gguf_file *g = NULL;
    bool ok = gguf_open_memory(&g, bytes, size, "whole", &st) == LOFT_OK;
    /* Padding after the last tensor is optional, so only prefixes that cut
     * into the header or the data are malformed. */
    size_t data_end = 0;
    for (uint64_t i = 0; ok && i < g->n_tensors; i++) {
        size_t end = (size_t)(g->data_offset + g->tensors[i].offset + g->tensors[i].nbytes);
        if (end > data_end) data_end = end;
    }
    gguf_close(g);
    int accepted = -1;
    for (size_t n = 0; ok && n < data_end && accepted < 0; n++) {
        unsigned char *copy = malloc(n ? n : 1); /* exact size, so ASan sees overreads */
        if (n) memcpy(copy, bytes, n);
        if (gguf_open_memory(&g, copy, n, "prefix", &st) == LOFT_OK) {
            accepted = (int)n;
            gguf_close(g);
        }
        free(copy);
    }
    free(bytes);
    CHECKF(ok, "the seed file itself is refused: %s", st.msg);
    CHECK(data_end > 600);
    CHECKF(accepted < 0, "a prefix of %d bytes was accepted", accepted);
}

/* ---- (4) I/O errors --------------------------------------------------------------- */

static void test_open_errors(void)
{
    loft_status st;
    gguf_file *g = (gguf_file *)&st; /* must be reset to NULL */
    CHECK(gguf_open(&g, "/nonexistent/model.gguf", &st) == LOFT_ERR_IO && g == NULL);
    CHECKF(strstr(st.msg, "/nonexistent/model.gguf") && strstr(st.msg, "No such file"), "%s",
           st.msg);
    const char *dir = tmp_path("a-directory");
    CHECK(mkdir(dir, 0700) == 0 || errno == EEXIST);
    CHECK(gguf_open(&g, dir, &st) == LOFT_ERR_IO && g == NULL);
    CHECKF(strstr(st.msg, "a-directory") && strstr(st.msg, "is a directory"), "%s", st.msg);
    const char *empty = tmp_path("empty.gguf");
    FILE *f = fopen(empty, "wb");
    CHECK(f);
    fclose(f);
    CHECK(gguf_open(&g, empty, &st) == LOFT_ERR_FORMAT && g == NULL);
    CHECKF(strstr(st.msg, "empty.gguf") && strstr(st.msg, "file is empty"), "%s", st.msg);
    const char *fifo = tmp_path("a-fifo");
    CHECK(mkfifo(fifo, 0600) == 0 || errno == EEXIST);
    CHECK(gguf_open(&g, fifo, &st) == LOFT_ERR_IO && g == NULL); /* and does not block */
    CHECKF(strstr(st.msg, "a-fifo") && strstr(st.msg, "not a regular file"), "%s", st.msg);
    CHECK(gguf_open_memory(&g, NULL, 0, "mem", &st) == LOFT_ERR_FORMAT && g == NULL);
    CHECKF(strstr(st.msg, "mem: ") && strstr(st.msg, "empty"), "%s", st.msg);
}

/* ---- (5) the Python reference reader ------------------------------------------------ */

static void test_python_reads_writer_output(void)
{
    loft_status st;
    const char *path = tmp_path("for-python.gguf");
    CHECKF(write_spec(path, &st), "%s", st.msg);
    const char *py = getenv("PYTHON");
    char cmd[1024];
    char script[512];
    snprintf(script, sizeof script, "%s", test_data_path("py/check_gguf_file.py"));
    snprintf(cmd, sizeof cmd, "%s '%s' '%s' 2>&1", py && *py ? py : "python3", script, path);
    int rc = system(cmd);
    CHECKF(rc == 0, "'%s' failed (status %d): python3 with the gguf package is required", cmd, rc);
}

/* ---- small pieces ------------------------------------------------------------------ */

static void test_type_names_and_sizes(void)
{
    CHECK(!strcmp(gguf_type_name(GGUF_TYPE_UINT32), "uint32"));
    CHECK(!strcmp(gguf_type_name(GGUF_TYPE_FLOAT64), "float64"));
    CHECK(!strcmp(gguf_type_name((gguf_type)77), "?"));
    CHECK(gguf_type_size(GGUF_TYPE_BOOL) == 1 && gguf_type_size(GGUF_TYPE_INT16) == 2);
    CHECK(gguf_type_size(GGUF_TYPE_FLOAT32) == 4 && gguf_type_size(GGUF_TYPE_UINT64) == 8);
    CHECK(gguf_type_size(GGUF_TYPE_STRING) == 0 && gguf_type_size(GGUF_TYPE_ARRAY) == 0);
    gguf_str s = {3, "abcdef"};
    CHECK(gguf_str_eq(s, "abc") && !gguf_str_eq(s, "ab") && !gguf_str_eq(s, "abcd"));
    gguf_str e = {0, NULL};
    CHECK(gguf_str_eq(e, "") && !gguf_str_eq(e, "a"));
    gguf_close(NULL);
}

static void cleanup_tmp(void)
{
    if (!tmp_dir[0]) return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"gguf_roundtrip_every_type", test_roundtrip_every_type},
        {"gguf_copy_through_reader_is_identical", test_copy_through_reader_is_identical},
        {"gguf_roundtrip_alignments", test_roundtrip_alignments},
        {"gguf_writer_refuses_bad_arguments", test_writer_refuses_bad_arguments},
        {"gguf_writer_full_disk_keeps_old_file", test_writer_full_disk_keeps_old_file},
        {"gguf_models_match_python_reader", test_models_match_python_reader},
        {"gguf_models_hyperparameters", test_models_hyperparameters},
        {"gguf_corrupt_files_are_refused", test_corrupt_files_are_refused},
        {"gguf_every_prefix_is_refused", test_every_prefix_is_refused},
        {"gguf_open_errors", test_open_errors},
        {"gguf_python_reads_writer_output", test_python_reads_writer_output},
        {"gguf_type_names_and_sizes", test_type_names_and_sizes},
    };
    int rc = test_main(argc, argv, cases, TEST_COUNT(cases));
    cleanup_tmp();
    return rc;
}
