/*
 * Checks the type table and the reference (de)quantizers of src/quant:
 * dequantization bit for bit against the gguf Python package (fixtures from
 * scripts/gen-quant-fixtures.py), quantization byte for byte against the
 * package's quantizers, the type table, and the half/bfloat conversions
 * exhaustively. Error bounds of the quantizers: test_quant_roundtrip.c;
 * whole models: test_dequant_models.c.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quant/quant.h"
#include "test.h"

/* ---- fixtures -------------------------------------------------------- */

typedef struct fixture {
    uint32_t kind, type, n_values, n_bytes;
    uint8_t *blocks; /* n_bytes */
    float *values;   /* n_values */
    unsigned char *buf;
} fixture;

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void fixture_free(fixture *fx)
{
    free(fx->buf);
    free(fx->blocks);
    free(fx->values);
}

/* Loads tests/golden/quant/<name>.bin; false (and a message) on any fault. */
static bool fixture_load(const char *name, uint32_t want_kind, fixture *fx, char *err, size_t cap)
{
    char rel[256];
    snprintf(rel, sizeof rel, "golden/quant/%s.bin", name);
    const char *path = test_data_path(rel);
    memset(fx, 0, sizeof *fx);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, cap, "%s: cannot open", path);
        return false;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    fx->buf = malloc(size > 0 ? (size_t)size : 1);
    bool ok = fx->buf && size >= 24 && fread(fx->buf, 1, (size_t)size, f) == (size_t)size;
    fclose(f);
    if (ok) {
        fx->kind = rd32(fx->buf + 8);
        fx->type = rd32(fx->buf + 12);
        fx->n_values = rd32(fx->buf + 16);
        fx->n_bytes = rd32(fx->buf + 20);
        ok = memcmp(fx->buf, "LQFX", 4) == 0 && rd32(fx->buf + 4) == 1 && fx->kind == want_kind &&
             (uint64_t)size == 24 + (uint64_t)fx->n_bytes + 4ull * fx->n_values;
    }
    if (!ok) {
        snprintf(err, cap, "%s: bad or truncated fixture", path);
        free(fx->buf);
        fx->buf = NULL;
        return false;
    }
    unsigned char *body = fx->buf + 24;
    /* Copy out so both arrays are aligned. */
    fx->blocks = malloc(fx->n_bytes + 1);
    fx->values = malloc(4ull * fx->n_values + 4);
    if (!fx->blocks || !fx->values) {
        snprintf(err, cap, "%s: out of memory", path);
        fixture_free(fx);
        return false;
    }
    if (fx->kind == 0) {
        memcpy(fx->blocks, body, fx->n_bytes);
        memcpy(fx->values, body + fx->n_bytes, 4ull * fx->n_values);
    } else {
        memcpy(fx->values, body, 4ull * fx->n_values);
        memcpy(fx->blocks, body + 4ull * fx->n_values, fx->n_bytes);
    }
    return true;
}

static uint32_t fbits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void fill_nan(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = bits_f(0x7fc0dead);
}

static const char *const dequant_fixtures[] = {
    "F32",  "F16",  "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
    "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K",
};

/* Every fixture dequantizes to exactly the reference bits (NaN payloads
 * included), whole and block by block into a NaN-poisoned buffer. */
static void test_dequantize_matches_reference(void)
{
    char err[512];
    for (int k = 0; k < TEST_COUNT(dequant_fixtures); k++) {
        const char *name = dequant_fixtures[k];
        fixture fx;
        CHECKF(fixture_load(name, 0, &fx, err, sizeof err), "%s", err);
        int t = loft_type_from_name(name);
        const loft_type_traits *tr = loft_type_get((uint32_t)t);
        bool ok = t == (int)fx.type && tr && tr->can_dequantize &&
                  loft_type_row_size(fx.type, fx.n_values) == fx.n_bytes;
        float *out = malloc(4ull * fx.n_values);
        fill_nan(out, fx.n_values);
        ok = ok && loft_dequantize_row(fx.type, fx.blocks, out, fx.n_values);
        uint32_t bad = UINT32_MAX;
        for (uint32_t i = 0; ok && i < fx.n_values && bad == UINT32_MAX; i++) {
            if (fbits(out[i]) != fbits(fx.values[i])) bad = i;
        }
        /* Block by block, from an unaligned copy. */
        uint8_t *shifted = malloc(fx.n_bytes + 1);
        memcpy(shifted + 1, fx.blocks, fx.n_bytes);
        fill_nan(out, fx.n_values);
        for (uint32_t b = 0; ok && b < fx.n_values / tr->block_size; b++) {
            ok = loft_dequantize_row(fx.type, shifted + 1 + (size_t)b * tr->type_size,
                                     out + (size_t)b * tr->block_size, tr->block_size);
        }
        bool same = ok && memcmp(out, fx.values, 4ull * fx.n_values) == 0;
        float got = ok && bad != UINT32_MAX ? out[bad] : 0,
              want = bad != UINT32_MAX ? fx.values[bad] : 0;
        free(shifted);
        free(out);
        fixture_free(&fx);
        CHECKF(ok, "%s: type/size/dequantize call failed", name);
        CHECKF(bad == UINT32_MAX, "%s: value %u is %.9g (0x%08x), reference %.9g (0x%08x)", name,
               bad, got, fbits(got), want, fbits(want));
        CHECKF(same, "%s: block-by-block dequantization differs", name);
    }
}

static const char *const quant_fixtures[] = {"F16",  "BF16", "Q8_0", "Q4_0", "Q4_1",
                                             "Q5_0", "Q5_1", "Q8_1", "Q2_K", "Q3_K",
                                             "Q4_K", "Q5_K", "Q6_K", "Q8_K"};

/* Every quantizer produces exactly the reference bytes: the gguf package's
 * for F16, BF16 and the legacy types (which the fixture script also checked
 * against ggml), ggml's quantize_row_*_ref for Q8_1 and the K-quants. */
static void test_quantize_matches_reference(void)
{
    char err[512], fname[64];
    for (int k = 0; k < TEST_COUNT(quant_fixtures); k++) {
        const char *name = quant_fixtures[k];
        snprintf(fname, sizeof fname, "quantize-%s", name);
        fixture fx;
        CHECKF(fixture_load(fname, 1, &fx, err, sizeof err), "%s", err);
        bool ok = loft_type_from_name(name) == (int)fx.type &&
                  loft_type_row_size(fx.type, fx.n_values) == fx.n_bytes;
        uint8_t *out = malloc(fx.n_bytes);
        memset(out, 0xA5, fx.n_bytes);
        ok = ok && loft_quantize_row(fx.type, fx.values, out, fx.n_values);
        uint32_t bad = UINT32_MAX;
        for (uint32_t i = 0; ok && i < fx.n_bytes && bad == UINT32_MAX; i++) {
            if (out[i] != fx.blocks[i]) bad = i;
        }
        unsigned got = bad != UINT32_MAX ? out[bad] : 0,
                 want = bad != UINT32_MAX ? fx.blocks[bad] : 0;
        const loft_type_traits *tr = loft_type_get(fx.type);
        uint32_t value = bad != UINT32_MAX && tr ? bad / tr->type_size * tr->block_size : 0;
        free(out);
        fixture_free(&fx);
        CHECKF(ok, "%s: type/size/quantize call failed", name);
        CHECKF(bad == UINT32_MAX, "%s: byte %u (block of value %u) is 0x%02x, reference 0x%02x",
               name, bad, value, got, want);
    }
}

/* ---- type table ------------------------------------------------------ */

static void test_type_table(void)
{
    static const struct {
        const char *name;
        uint32_t id, bs, ts;
    } want[] = {
        {"F32", 0, 1, 4},       {"F16", 1, 1, 2},       {"Q4_0", 2, 32, 18},
        {"Q4_1", 3, 32, 20},    {"Q5_0", 6, 32, 22},    {"Q5_1", 7, 32, 24},
        {"Q8_0", 8, 32, 34},    {"Q8_1", 9, 32, 36},    {"Q2_K", 10, 256, 84},
        {"Q3_K", 11, 256, 110}, {"Q4_K", 12, 256, 144}, {"Q5_K", 13, 256, 176},
        {"Q6_K", 14, 256, 210}, {"Q8_K", 15, 256, 292}, {"I8", 24, 1, 1},
        {"I16", 25, 1, 2},      {"I32", 26, 1, 4},      {"I64", 27, 1, 8},
        {"F64", 28, 1, 8},      {"BF16", 30, 1, 2},
    };
    int known = 0;
    for (uint32_t t = 0; t < 256; t++)
        known += loft_type_get(t) != NULL;
    CHECKF(known == TEST_COUNT(want), "%d known types, expected %d", known, TEST_COUNT(want));
    for (int i = 0; i < TEST_COUNT(want); i++) {
        const loft_type_traits *tr = loft_type_get(want[i].id);
        CHECKF(tr && strcmp(tr->name, want[i].name) == 0, "type %u", want[i].id);
        CHECKF(tr->block_size == want[i].bs && tr->type_size == want[i].ts, "%s sizes %u/%u",
               tr->name, tr->block_size, tr->type_size);
        CHECKF(tr->can_dequantize, "%s has no dequantizer", tr->name);
        CHECK(loft_type_from_name(want[i].name) == (int)want[i].id);
        CHECK(loft_type_row_size(want[i].id, 0) == 0);
        CHECK(loft_type_row_size(want[i].id, 4096) == 4096 / want[i].bs * want[i].ts);
        CHECK(loft_type_row_size(want[i].id, -(int64_t)want[i].bs) == 0);
        if (want[i].bs > 1) {
            CHECK(loft_type_row_size(want[i].id, want[i].bs + 1) == 0);
            CHECK(loft_type_row_size(want[i].id, want[i].bs / 2) == 0);
            float dummy[1] = {0};
            uint8_t blk[300];
            CHECK(!loft_dequantize_row(want[i].id, blk, dummy, 1));
            CHECK(!loft_quantize_row(want[i].id, dummy, blk, 1));
        }
    }
    /* Quantizers: every float and quantized type but the integer ones. */
    const char *const quantizable[] = {"F32",  "F16",  "BF16", "Q4_0", "Q4_1",
                                       "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K",
                                       "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K"};
    for (int i = 0; i < TEST_COUNT(quantizable); i++) {
        CHECKF(loft_type_get((uint32_t)loft_type_from_name(quantizable[i]))->can_quantize, "%s",
               quantizable[i]);
    }
    CHECK(!loft_type_get(LOFT_TYPE_I32)->can_quantize);
    float f = 1;
    uint8_t b[8];
    CHECK(!loft_quantize_row(LOFT_TYPE_I32, &f, b, 1));

    /* Case-insensitive names; unknowns. */
    CHECK(loft_type_from_name("q4_k") == LOFT_TYPE_Q4_K);
    CHECK(loft_type_from_name("bf16") == LOFT_TYPE_BF16);
    CHECK(loft_type_from_name("Q4_K_M") == -1);
    CHECK(loft_type_from_name("") == -1);
    CHECK(loft_type_from_name(NULL) == -1);
    CHECK(loft_type_from_name("IQ2_XXS") == -1);
    /* Ids ggml has but loft does not (IQ*, TQ*, MXFP4) and out of range. */
    const uint32_t unknown[] = {4, 5, 16, 20, 23, 29, 31, 34, 35, 39, 40, 41, 1000, UINT32_MAX};
    for (int i = 0; i < TEST_COUNT(unknown); i++) {
        CHECKF(loft_type_get(unknown[i]) == NULL, "type %u should be unknown", unknown[i]);
        CHECK(loft_type_row_size(unknown[i], 256) == 0);
        float out[256];
        uint8_t blk[1024] = {0};
        CHECK(!loft_dequantize_row(unknown[i], blk, out, 256));
        CHECK(!loft_quantize_row(unknown[i], out, blk, 256));
    }
    /* Overflow of the byte count: n fits int64 but n * bytes does not fit
     * size_t (64-bit hosts; a 32-bit host overflows earlier). */
    CHECK(loft_type_row_size(LOFT_TYPE_F64, (int64_t)1 << 61) == 0);
    CHECK(loft_type_row_size(LOFT_TYPE_F32, (int64_t)1 << 62) == 0);
    CHECK(loft_type_row_size(LOFT_TYPE_I64, INT64_MAX) == 0);
    if (sizeof(size_t) == 8) {
        CHECK(loft_type_row_size(LOFT_TYPE_F64, ((int64_t)1 << 61) - 1) ==
              (size_t)(((int64_t)1 << 61) - 1) * 8);
        CHECK(loft_type_row_size(LOFT_TYPE_I8, INT64_MAX) == (size_t)INT64_MAX);
        CHECK(loft_type_row_size(LOFT_TYPE_Q8_K, INT64_MAX / 256 * 256) ==
              (size_t)(INT64_MAX / 256) * 292);
    }
}

/* ---- half / bfloat --------------------------------------------------- */

/* Exact value of binary16 bits h, computed independently with ldexp. */
static double f16_exact(uint16_t h)
{
    int e = (h >> 10) & 31, m = h & 1023;
    double s = (h & 0x8000) ? -1.0 : 1.0;
    if (e == 31) return m ? NAN : s * INFINITY;
    if (e == 0) return s * ldexp(m, -24);
    return s * ldexp(1024 + m, e - 25);
}

static void test_half_exhaustive(void)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = loft_f16_to_f32((uint16_t)h);
        double want = f16_exact((uint16_t)h);
        bool nan = isnan(want);
        CHECKF(nan ? isnan(f) : ((double)f == want && !signbit(f) == !signbit(want)),
               "f16 0x%04x -> %.9g, want %.9g", h, f, want);
        uint16_t back = loft_f32_to_f16(f);
        /* Round trip is exact, NaN payloads included. */
        CHECKF(back == h, "f16 0x%04x -> f32 -> 0x%04x", h, back);
        if (!nan && h != 0x7bff && h != 0xfbff && (h & 0x7c00) != 0x7c00) {
            /* Just below and above the midpoint to the next value up in
             * magnitude round to h and to h+1; the midpoint to the even one. */
            double next = f16_exact((uint16_t)(h + 1));
            double mid = (want + next) / 2; /* exact in double */
            float below = nextafterf((float)mid, (float)want);
            float above = nextafterf((float)mid, (float)next);
            CHECKF((double)(float)mid == mid, "midpoint of 0x%04x not a float", h);
            CHECKF(loft_f32_to_f16(below) == h, "below midpoint 0x%04x", h);
            CHECKF(loft_f32_to_f16(above) == h + 1, "above midpoint 0x%04x", h);
            CHECKF(loft_f32_to_f16((float)mid) == ((h & 1) ? h + 1 : h), "tie at 0x%04x", h);
        }
    }
    CHECK(loft_f32_to_f16(65520.0f) == 0x7c00);
    CHECK(loft_f32_to_f16(nextafterf(65520.0f, 0)) == 0x7bff);
    CHECK(loft_f32_to_f16(-1e30f) == 0xfc00);
    CHECK(loft_f32_to_f16(ldexpf(1, -25)) == 0x0000);
    CHECK(loft_f32_to_f16(nextafterf(ldexpf(1, -25), 1)) == 0x0001);
    CHECK(loft_f32_to_f16(-ldexpf(3, -25)) == 0x8002); /* 1.5 ulp: tie, even 2 */
    CHECK(loft_f32_to_f16(ldexpf(5, -25)) == 0x0002);  /* 2.5 ulp: tie, even 2 */
    CHECK(loft_f32_to_f16(1e-45f) == 0 && loft_f32_to_f16(-0.0f) == 0x8000);
    uint16_t n = loft_f32_to_f16(bits_f(0x7f800001));
    CHECK((n & 0x7c00) == 0x7c00 && (n & 0x3ff) != 0); /* NaN stays NaN */
}

static void test_bfloat_exhaustive(void)
{
    for (uint32_t h = 0; h < 65536; h++) {
        float f = loft_bf16_to_f32((uint16_t)h);
        CHECK(fbits(f) == h << 16);
        uint16_t back = loft_f32_to_bf16(f);
        bool nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
        /* NaNs come back quiet; everything else exactly. */
        CHECKF(back == (nan ? (h | 0x40) : h), "bf16 0x%04x -> 0x%04x", h, back);
        if (!nan && (h & 0x7f80) != 0x7f80) {
            uint32_t u = h << 16;
            CHECK(loft_f32_to_bf16(bits_f(u | 0x7fff)) == h);
            CHECK(loft_f32_to_bf16(bits_f(u | 0x8001)) == h + 1);
            CHECK(loft_f32_to_bf16(bits_f(u | 0x8000)) == ((h & 1) ? h + 1 : h));
        }
    }
    CHECK(loft_f32_to_bf16(bits_f(0x7f7fffff)) == 0x7f80); /* rounds to infinity */
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"quant_type_table", test_type_table},
        {"quant_half_exhaustive", test_half_exhaustive},
        {"quant_bfloat_exhaustive", test_bfloat_exhaustive},
        {"quant_dequantize_matches_reference", test_dequantize_matches_reference},
        {"quant_quantize_matches_reference", test_quantize_matches_reference},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
