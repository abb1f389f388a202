/*
 * The whole forward pass of the real models against references made by
 * scripts/gen-logit-fixtures.py (tests/golden/logits/<model>.txt):
 * llama.cpp's logits and greedy continuations, and a float64 numpy forward
 * of the same dequantized weights.
 *
 * Tolerances, and why:
 *  - loft vs the float64 reference, on llama.cpp's top-64 ids at the last
 *    prompt position: |diff| < 0.05. loft computes in F32 but keeps K/V in
 *    F16 like llama.cpp (relative rounding 2^-11 on every cached key and
 *    value); through 18-30 layers that moves logits of size ~20 by about
 *    1e-2 (measured: at most 0.02 on these prompts).
 *  - loft vs llama.cpp on the same ids: llama.cpp quantizes the activations
 *    to 8 bits (Q8_0 / Q8_1 / Q8_K) inside every matmul, so it is itself
 *    0.18-0.86 away from the float64 values on these prompts (the fixture
 *    holds both). By the triangle inequality loft can be at most that far
 *    plus loft's own 0.05: per prompt, max|loft - llama| <= max|llama -
 *    exact| + 0.05.
 *  - top-1 at the last prompt position must equal llama.cpp's; top-5
 *    agreement is reported.
 *  - greedy continuations are checked teacher-forced: loft runs prompt +
 *    the reference's 64 greedy tokens as one batch with all logits; the
 *    continuation is identical iff loft's argmax at every step is the
 *    reference's token.
 *    . Against the float64 reference's own greedy continuation: identical
 *      for all but at most one prompt per model.
 *    . Against llama.cpp's: its 8-bit noise flips near-ties (measured: its
 *      own greedy continuation leaves the float64 one after 1-63 steps on
 *      these prompts), so on the F32 path what must hold is: loft picks
 *      llama.cpp's token at every step where llama.cpp's best-vs-second
 *      margin is at least 2 * (max|llama - exact| + 0.05) -- two logits
 *      each off by at most that much cannot swap a wider gap.
 *  - the default (8-bit) path copies llama.cpp's arithmetic instead (its
 *    activation quantization, F16 roundings and, where the kernels follow
 *    it, its summation order) and is held to llama.cpp itself: see
 *    check_default_path.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infer/kv.h"
#include "model/model.h"
#include "test.h"

#define MAX_PROMPTS 16
#define MAX_TOKENS 256
#define N_TOP 64
#define N_GEN 64
#define TOL_EXACT 0.05

typedef struct fixture_prompt {
    int n_tokens;
    int32_t tokens[MAX_TOKENS];
    int32_t top_ids[N_TOP];
    double top_llama[N_TOP];
    double top_exact[N_TOP];
    int32_t greedy[N_GEN];
    double margins[N_GEN];
    int32_t greedy_exact[N_GEN];
    double margins_exact[N_GEN];
} fixture_prompt;

typedef struct fixture {
    char model[256];
    int n_vocab;
    int n_prompts;
    fixture_prompt p[MAX_PROMPTS];
} fixture;

/* Reads up to n numbers after the key of `line` into ints or doubles;
 * returns how many were read. */
static int parse_ints(const char *line, int32_t *out, int n)
{
    const char *s = strchr(line, ' ');
    int i = 0;
    while (s && i < n) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) break;
        out[i++] = (int32_t)v;
        s = end;
    }
    return i;
}

static int parse_doubles(const char *line, double *out, int n)
{
    const char *s = strchr(line, ' ');
    int i = 0;
    while (s && i < n) {
        char *end;
        double v = strtod(s, &end);
        if (end == s) break;
        out[i++] = v;
        s = end;
    }
    return i;
}

static bool starts(const char *line, const char *key)
{
    size_t n = strlen(key);
    return strncmp(line, key, n) == 0 && line[n] == ' ';
}

/* Loads tests/golden/logits/<name>.txt; false (with a message) when the file
 * is missing or malformed. */
static bool fixture_load(fixture *f, const char *name)
{
    char rel[256];
    snprintf(rel, sizeof rel, "golden/logits/%s.txt", name);
    const char *path = test_data_path(rel);
    FILE *fp = fopen(path, "r");
    if (!fp) {
        fprintf(stderr, "    cannot open %s\n", path);
        return false;
    }
    memset(f, 0, sizeof *f);
    static char line[65536];
    fixture_prompt *cur = NULL;
    bool ok = true, ended = false;
    while (ok && fgets(line, sizeof line, fp)) {
        line[strcspn(line, "\n")] = '\0';
        if (line[0] == '#' || line[0] == '\0') continue;
        if (starts(line, "model")) {
            size_t len = strlen(line + 6);
            ok = len < sizeof f->model;
            if (ok) memcpy(f->model, line + 6, len + 1);
        } else if (starts(line, "n_vocab")) {
            f->n_vocab = atoi(line + 8);
        } else if (starts(line, "n_top")) {
            ok = atoi(line + 6) == N_TOP;
        } else if (starts(line, "n_gen")) {
            ok = atoi(line + 6) == N_GEN;
        } else if (starts(line, "prompt")) {
            ok = f->n_prompts < MAX_PROMPTS;
            if (ok) cur = &f->p[f->n_prompts++];
        } else if (starts(line, "text") || starts(line, "stats")) {
            continue;
        } else if (!cur) {
            ok = strcmp(line, "end") == 0 && (ended = true);
        } else if (starts(line, "tokens")) {
            int32_t buf[MAX_TOKENS + 1];
            int n = parse_ints(line, buf, MAX_TOKENS + 1);
            ok = n >= 2 && buf[0] == n - 1;
            cur->n_tokens = buf[0];
            memcpy(cur->tokens, buf + 1, sizeof(int32_t) * (size_t)(n - 1));
        } else if (starts(line, "top_ids")) {
            ok = parse_ints(line, cur->top_ids, N_TOP) == N_TOP;
        } else if (starts(line, "top_llama")) {
            ok = parse_doubles(line, cur->top_llama, N_TOP) == N_TOP;
        } else if (starts(line, "top_exact")) {
            ok = parse_doubles(line, cur->top_exact, N_TOP) == N_TOP;
        } else if (starts(line, "greedy")) {
            ok = parse_ints(line, cur->greedy, N_GEN) == N_GEN;
        } else if (starts(line, "margins")) {
            ok = parse_doubles(line, cur->margins, N_GEN) == N_GEN;
        } else if (starts(line, "greedy_exact")) {
            ok = parse_ints(line, cur->greedy_exact, N_GEN) == N_GEN;
        } else if (starts(line, "margins_exact")) {
            ok = parse_doubles(line, cur->margins_exact, N_GEN) == N_GEN;
        } else if (strcmp(line, "end") == 0) {
            ended = true;
        } else {
            ok = false;
        }
    }
    fclose(fp);
    if (!ok || !ended || f->n_prompts == 0) {
        fprintf(stderr, "    %s: malformed fixture near \"%.60s\"\n", path, line);
        return false;
    }
    return true;
}

static int32_t argmax(const float *x, int n)
{
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

/* Number of ids of the reference top-5 (ref_ids) found in loft's top 5. */
static int top5_overlap(const float *lg, int n_vocab, const int32_t *ref_ids)
{
    int32_t mine[5];
    for (int k = 0; k < 5; k++) {
        int32_t best = -1;
        for (int i = 0; i < n_vocab; i++) {
            bool taken = false;
            for (int j = 0; j < k; j++) taken |= mine[j] == i;
            if (!taken && (best < 0 || lg[i] > lg[best])) best = i;
        }
        mine[k] = best;
    }
    int hits = 0;
    for (int k = 0; k < 5; k++)
        for (int j = 0; j < 5; j++) hits += mine[j] == ref_ids[k];
    return hits;
}

/* Runs prompt + gen[0..N_GEN-1) teacher-forced and leaves in lg row j the
 * logits after position n-1+j (row 0: last prompt token). kv keeps the
 * whole sequence. */
static loft_code run_teacher_forced(loft_model *m, kv_cache *kv, const fixture_prompt *p,
                                    const int32_t *gen, int32_t *seq, float *lg, loft_status *st)
{
    const int n = p->n_tokens;
    memcpy(seq, p->tokens, sizeof(int32_t) * (size_t)n);
    memcpy(seq + n, gen, sizeof(int32_t) * (N_GEN - 1));
    kv_cache_clear(kv);
    loft_code c = LOFT_OK;
    if (n > 1) c = model_forward(m, kv, seq, n - 1, lg, false, st);
    if (c == LOFT_OK) c = model_forward(m, kv, seq + n - 1, N_GEN, lg, true, st);
    return c;
}

static void check_model_against_fixture(const char *name)
{
    static fixture f;
    CHECK(fixture_load(&f, name));
    loft_status st;
    loft_model *m = NULL;
    loft_code c = model_load(&m, test_model_path(f.model), &st);
    if (c == LOFT_OK) model_set_f32_activations(m, true);
    CHECKF(c == LOFT_OK, "%s", st.msg);
    const model_hparams *hp = model_get_hparams(m);
    CHECK(hp->n_vocab == f.n_vocab);
    kv_cache *kv = NULL;
    c = kv_cache_init(&kv, m, 512, &st);
    CHECKF(c == LOFT_OK, "%s", st.msg);
    const size_t V = (size_t)f.n_vocab;
    int32_t *seq = malloc(sizeof(int32_t) * (MAX_TOKENS + N_GEN));
    float *lg = malloc(sizeof(float) * N_GEN * V);
    CHECK(seq && lg);

    double worst_exact = 0, worst_llama = 0;
    int top1 = 0, top5 = 0, same_llama = 0, same_exact = 0, failures = 0, clear_misses = 0;
    for (int pi = 0; pi < f.n_prompts; pi++) {
        const fixture_prompt *p = &f.p[pi];
        c = run_teacher_forced(m, kv, p, p->greedy, seq, lg, &st);
        if (c != LOFT_OK) {
            fprintf(stderr, "    %s prompt %d: %s\n", name, pi, st.msg);
            failures++;
            continue;
        }
        /* Logits at the last prompt position. */
        double d_exact = 0, d_llama = 0, llama_exact = 0;
        for (int k = 0; k < N_TOP; k++) {
            const double v = lg[p->top_ids[k]];
            d_exact = fmax(d_exact, fabs(v - p->top_exact[k]));
            d_llama = fmax(d_llama, fabs(v - p->top_llama[k]));
            llama_exact = fmax(llama_exact, fabs(p->top_llama[k] - p->top_exact[k]));
        }
        worst_exact = fmax(worst_exact, d_exact);
        worst_llama = fmax(worst_llama, d_llama);
        const bool t1 = argmax(lg, f.n_vocab) == p->top_ids[0];
        top1 += t1;
        const int o5 = top5_overlap(lg, f.n_vocab, p->top_ids);
        top5 += o5;

        /* llama.cpp's continuation: a step can only flip when llama.cpp's
         * margin is below twice the two engines' combined deviation. */
        const double flip_band = 2.0 * (llama_exact + TOL_EXACT);
        int div_llama = -1, misses = 0;
        for (int j = 0; j < N_GEN; j++) {
            if (argmax(lg + (size_t)j * V, f.n_vocab) == p->greedy[j]) continue;
            if (div_llama < 0) div_llama = j;
            if (p->margins[j] >= flip_band) misses++;
        }
        same_llama += div_llama < 0;
        clear_misses += misses;

        /* The float64 reference's continuation shares rows 0..d with
         * llama.cpp's (d = their first difference); only the rest is run. */
        int d = 0;
        while (d < N_GEN && p->greedy_exact[d] == p->greedy[d]) d++;
        int div_exact = -1;
        for (int j = 0; j <= d && j < N_GEN && div_exact < 0; j++)
            if (argmax(lg + (size_t)j * V, f.n_vocab) != p->greedy_exact[j]) div_exact = j;
        if (div_exact < 0 && d < N_GEN - 1) {
            c = run_teacher_forced(m, kv, p, p->greedy_exact, seq, lg, &st);
            for (int j = d + 1; c == LOFT_OK && j < N_GEN && div_exact < 0; j++)
                if (argmax(lg + (size_t)j * V, f.n_vocab) != p->greedy_exact[j]) div_exact = j;
            if (c != LOFT_OK) failures++;
        }
        same_exact += div_exact < 0;

        printf("    %s prompt %2d (%2d tok): max|loft-exact| %.4f  max|loft-llama| %.4f "
               "(llama-exact %.4f)  top1 %s  top5 %d/5  greedy vs float64 ",
               name, pi, p->n_tokens, d_exact, d_llama, llama_exact, t1 ? "ok" : "MISS", o5);
        if (div_exact < 0)
            printf("identical");
        else
            printf("diverges at %d (margin %.4f)", div_exact, p->margins_exact[div_exact]);
        if (div_llama < 0)
            printf(", vs llama.cpp identical\n");
        else
            printf(", vs llama.cpp diverges at %d (llama.cpp margin %.4f, flip band %.3f)\n",
                   div_llama, p->margins[div_llama], flip_band);
        if (d_exact >= TOL_EXACT || d_llama > llama_exact + TOL_EXACT || !t1 || misses) failures++;
    }
    printf("    %s: %d prompts, max|loft-exact| %.4f (tol %.2f), max|loft-llama| %.4f, "
           "top-1 %d/%d, top-5 %d/%d, greedy identical to float64 %d/%d, to llama.cpp %d/%d, "
           "flips outside the band %d\n",
           name, f.n_prompts, worst_exact, TOL_EXACT, worst_llama, top1, f.n_prompts, top5,
           5 * f.n_prompts, same_exact, f.n_prompts, same_llama, f.n_prompts, clear_misses);
    free(seq);
    free(lg);
    kv_cache_free(kv);
    model_free(m);
    CHECKF(failures == 0, "%s: %d prompts outside the tolerances, top-1 or flip band", name,
           failures);
    CHECKF(same_exact >= f.n_prompts - 1, "%s: only %d of %d greedy continuations identical", name,
           same_exact, f.n_prompts);
}

/* The default (8-bit activation) path against llama.cpp, generating as
 * llama.cpp did for the fixture: the prompt as one batch, then one token
 * per forward. At each step loft's argmax is compared with llama.cpp's
 * token, which is then fed; up to the first difference this is loft's own
 * greedy generation, and after it the continuation is no longer identical,
 * so the run stops there.
 *
 * `exact`: the model's weight types all have a dot product that follows
 * ggml's summation order (see kernels/attn_ggml.c, loft_kernels.dotb and the
 * 32-value block kernels of kernels/x86_body.h), so
 * loft computes llama.cpp's logits to the bit: the fixture's six decimals
 * must agree within 2e-5 (its rounding and the output product's order),
 * and at least 90% of the continuations (the 9 of 10) must be
 * identical. Otherwise the figures are reported only. */
#define TOL_LLAMA_EXACT 2e-5

static void check_default_path(const char *name, bool exact)
{
    static fixture f;
    CHECK(fixture_load(&f, name));
    loft_status st;
    loft_model *m = NULL;
    loft_code c = model_load(&m, test_model_path(f.model), &st);
    CHECKF(c == LOFT_OK, "%s", st.msg);
    const model_hparams *hp = model_get_hparams(m);
    CHECK(hp->n_vocab == f.n_vocab);
    kv_cache *kv = NULL;
    c = kv_cache_init(&kv, m, 512, &st);
    CHECKF(c == LOFT_OK, "%s", st.msg);
    float *lg = malloc(sizeof(float) * (size_t)f.n_vocab);
    CHECK(lg);

    double worst = 0;
    int top1 = 0, same = 0, failures = 0;
    for (int pi = 0; pi < f.n_prompts; pi++) {
        const fixture_prompt *p = &f.p[pi];
        kv_cache_clear(kv);
        c = model_forward(m, kv, p->tokens, p->n_tokens, lg, false, &st);
        if (c != LOFT_OK) {
            fprintf(stderr, "    %s prompt %d: %s\n", name, pi, st.msg);
            failures++;
            continue;
        }
        double d = 0;
        for (int k = 0; k < N_TOP; k++) d = fmax(d, fabs(lg[p->top_ids[k]] - p->top_llama[k]));
        worst = fmax(worst, d);
        top1 += argmax(lg, f.n_vocab) == p->top_ids[0];
        int div = -1;
        int32_t mine = -1;
        for (int j = 0; j < N_GEN && c == LOFT_OK; j++) {
            mine = argmax(lg, f.n_vocab);
            if (mine != p->greedy[j]) {
                div = j;
                break;
            }
            if (j + 1 < N_GEN) c = model_forward(m, kv, &p->greedy[j], 1, lg, false, &st);
        }
        if (c != LOFT_OK) failures++;
        same += div < 0;
        printf("    %s default path prompt %2d (%2d tok): max|loft-llama| %.6f  ", name, pi,
               p->n_tokens, d);
        if (div < 0)
            printf("greedy identical\n");
        else
            printf("greedy diverges at %d (loft %d, llama.cpp %d, llama.cpp margin %.4f)\n", div,
                   (int)mine, (int)p->greedy[div], p->margins[div]);
    }
    printf("    %s default path: %d prompts, max|loft-llama| %.6f, top-1 %d/%d, greedy identical "
           "to llama.cpp %d/%d%s\n",
           name, f.n_prompts, worst, top1, f.n_prompts, same, f.n_prompts,
           exact ? "" : " (reported, not asserted: see check_default_path)");
    free(lg);
    kv_cache_free(kv);
    model_free(m);
    CHECKF(failures == 0, "%s: %d prompts failed to run", name, failures);
    if (!exact) return;
    CHECKF(worst < TOL_LLAMA_EXACT, "%s: max|loft-llama| %.6f, expected < %g", name, worst,
           TOL_LLAMA_EXACT);
    CHECKF(10 * same >= 9 * f.n_prompts, "%s: %d of %d greedy continuations identical, expected 90%%",
           name, same, f.n_prompts);
}

static void test_smollm2_logits(void)
{
    check_model_against_fixture("smollm2");
}

static void test_gemma3_logits(void)
{
    check_model_against_fixture("gemma3");
}

static void test_smollm2_llama_cpp(void)
{
    check_default_path("smollm2", true);
}

/* Gemma's Q5_0 / Q8_0 (ggml's 8-lane order, vector dot product and
 * tinyBLAS alike), Q4_K (ggml's repacked 4-token gemm and 1-token gemv) and
 * Q6_K (vector dot product, or the tiled K-quant matmul for 8 tokens or
 * more) products, its queries scaled before their F16 rounding and its
 * gelu table follow llama.cpp, so this holds to the bit too. */
static void test_gemma3_llama_cpp(void)
{
    check_default_path("gemma3", true);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"model_logits_smollm2", test_smollm2_logits},
        {"model_logits_gemma3", test_gemma3_logits},
        {"model_llama_cpp_smollm2", test_smollm2_llama_cpp},
        {"model_llama_cpp_gemma3", test_gemma3_llama_cpp},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
