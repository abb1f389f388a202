/*
 * Dequantizes every tensor of both test models row by row and compares a
 * hash of the floats with the gguf Python package's dequantization
 * (tests/golden/dequant-<model>.tsv, made by scripts/gen-dequant-hashes.py):
 *     row hash    = FNV-1a 64 of the row's float32 little-endian bytes
 *     tensor hash = FNV-1a 64 of the row hashes as 8 little-endian bytes each
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gguf/gguf.h"
#include "quant/quant.h"
#include "test.h"

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv_bytes(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

static uint64_t fnv_u64(uint64_t h, uint64_t v)
{
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    return fnv_bytes(h, b, 8);
}

static uint64_t fnv_floats(const float *x, int64_t n)
{
    uint64_t h = FNV_OFFSET;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &x[i], 4);
        unsigned char b[4] = {(unsigned char)u, (unsigned char)(u >> 8), (unsigned char)(u >> 16),
                              (unsigned char)(u >> 24)};
        h = fnv_bytes(h, b, 4);
    }
    return h;
}

typedef struct golden_row {
    char name[128];
    char type[16];
    long long n;
    uint64_t hash;
    bool seen;
} golden_row;

/* Reads the TSV into *rows (malloc'd); returns the count or -1. */
static int golden_load(const char *rel, golden_row **rows)
{
    FILE *f = fopen(test_data_path(rel), "r");
    if (!f) return -1;
    int n = 0, cap = 0;
    golden_row *r = NULL;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            golden_row *grown = realloc(r, (size_t)cap * sizeof *r);
            if (!grown) break;
            r = grown;
        }
        unsigned long long hash;
        if (sscanf(line, "%127[^\t]\t%15[^\t]\t%lld\t%llx", r[n].name, r[n].type, &r[n].n, &hash) !=
            4) {
            n = -1;
            break;
        }
        r[n].hash = hash;
        r[n].seen = false;
        n++;
    }
    fclose(f);
    *rows = r;
    return n;
}

static void check_model(const char *model, const char *golden)
{
    golden_row *rows = NULL;
    int n_rows = golden_load(golden, &rows);
    CHECKF(n_rows > 0, "%s: cannot read", golden);
    gguf_file *g = NULL;
    loft_status st;
    loft_code rc = gguf_open(&g, test_model_path(model), &st);
    if (rc != LOFT_OK) free(rows);
    CHECKF(rc == LOFT_OK, "%s", st.msg);

    char failure[512] = "";
    float *buf = NULL;
    int64_t buf_n = 0;
    for (uint64_t ti = 0; ti < g->n_tensors && !failure[0]; ti++) {
        const gguf_tensor_info *t = &g->tensors[ti];
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(t->name.len < 127 ? t->name.len : 127),
                 t->name.data);
        golden_row *want = NULL;
        for (int k = 0; k < n_rows; k++) {
            if (strcmp(rows[k].name, name) == 0) want = &rows[k];
        }
        const loft_type_traits *tr = loft_type_get(t->type);
        int64_t ne0 = t->ne[0];
        int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        size_t row_bytes = loft_type_row_size(t->type, ne0);
        if (!want || !tr || want->seen || want->n != n || strcmp(want->type, tr->name) != 0 ||
            row_bytes == 0 || (uint64_t)row_bytes * (uint64_t)(n / ne0) != t->nbytes) {
            snprintf(failure, sizeof failure,
                     "%s: tensor %s (type %u, %lld values) does not match "
                     "the golden table or its byte size",
                     model, name, t->type, (long long)n);
            break;
        }
        want->seen = true;
        if (ne0 > buf_n) {
            free(buf);
            buf = malloc((size_t)ne0 * sizeof *buf);
            buf_n = buf ? ne0 : 0;
        }
        uint64_t h = FNV_OFFSET;
        const unsigned char *src = t->data;
        for (int64_t r = 0; r < n / ne0; r++) {
            if (!buf || !loft_dequantize_row(t->type, src + (size_t)r * row_bytes, buf, ne0)) {
                snprintf(failure, sizeof failure, "%s: %s row %lld: dequantize failed", model, name,
                         (long long)r);
                break;
            }
            h = fnv_u64(h, fnv_floats(buf, ne0));
        }
        if (!failure[0] && h != want->hash) {
            snprintf(failure, sizeof failure, "%s: %s (%s): hash %016llx, reference %016llx", model,
                     name, tr->name, (unsigned long long)h, (unsigned long long)want->hash);
        }
    }
    int unseen = 0;
    for (int k = 0; k < n_rows; k++)
        unseen += !rows[k].seen;
    free(buf);
    free(rows);
    gguf_close(g);
    CHECKF(!failure[0], "%s", failure);
    CHECKF(unseen == 0, "%s: %d tensors of the golden table are not in the model", model, unseen);
}

static void test_smollm2(void)
{
    check_model("smollm2-135m-instruct-q4_1.gguf", "golden/dequant-smollm2-135m-instruct-q4_1.tsv");
}

static void test_gemma3(void)
{
    check_model("gemma-3-270m-q4_k_m.gguf", "golden/dequant-gemma-3-270m-q4_k_m.tsv");
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"dequant_models_smollm2_q4_1", test_smollm2},
        {"dequant_models_gemma3_q4_k_m", test_gemma3},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
