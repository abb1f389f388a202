/* Checks each sampler stage on hand-made logits (expected sets and
 * probabilities worked out by hand in the comments), the seeded draw's
 * reproducibility, and that draws follow the softmax distribution. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/rng.h"
#include "infer/sample.h"
#include "test.h"

#define MAXC 8192

static loft_candidate buf[MAXC];

/* Candidates 0..n-1 with the given logits, in id order. */
static loft_candidates make(const float *logits, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        buf[i].id = (int32_t)i;
        buf[i].logit = logits[i];
        buf[i].p = 0.0f;
    }
    loft_candidates c = {buf, n, false};
    return c;
}

static int has_id(const loft_candidates *c, int32_t id)
{
    for (size_t i = 0; i < c->size; i++)
        if (c->data[i].id == id) return 1;
    return 0;
}

static float logit_of(const loft_candidates *c, int32_t id)
{
    for (size_t i = 0; i < c->size; i++)
        if (c->data[i].id == id) return c->data[i].logit;
    return NAN;
}

static void test_penalties(void)
{
    /* repeat 2, frequency 0.5, presence 0.25; history 0, 1, 1:
     *   id 0:  2 / 2 = 1,   minus 1*0.5 + 0.25 -> 0.25
     *   id 1: -1 * 2 = -2,  minus 2*0.5 + 0.25 -> -3.25
     *   ids 2, 3 unchanged. */
    const float logits[] = {2.0f, -1.0f, 0.5f, 3.0f};
    loft_candidates c = make(logits, 4);
    const int32_t last[] = {0, 1, 1};
    loft_sample_penalties(&c, last, 3, 2.0f, 0.5f, 0.25f);
    CHECK(fabsf(logit_of(&c, 0) - 0.25f) < 1e-6f);
    CHECK(fabsf(logit_of(&c, 1) + 3.25f) < 1e-6f);
    CHECK(logit_of(&c, 2) == 0.5f && logit_of(&c, 3) == 3.0f);
    /* Neutral settings change nothing. */
    c = make(logits, 4);
    loft_sample_penalties(&c, last, 3, 1.0f, 0.0f, 0.0f);
    for (int i = 0; i < 4; i++)
        CHECK(logit_of(&c, i) == logits[i]);
}

static void test_top_k(void)
{
    const float logits[] = {1.0f, 5.0f, 3.0f, 4.0f, 2.0f};
    loft_candidates c = make(logits, 5);
    loft_sample_top_k(&c, 3);
    CHECK(c.size == 3 && c.sorted);
    CHECK(c.data[0].id == 1 && c.data[1].id == 3 && c.data[2].id == 2);
    c = make(logits, 5);
    loft_sample_top_k(&c, 0); /* off */
    CHECK(c.size == 5);
    c = make(logits, 5);
    loft_sample_top_k(&c, 99);
    CHECK(c.size == 5 && c.data[0].id == 1 && c.data[4].id == 0);
}

/* Logits whose softmax is exactly probs (up to rounding). */
static loft_candidates make_probs(const float *probs, size_t n)
{
    float logits[16];
    for (size_t i = 0; i < n; i++)
        logits[i] = logf(probs[i]);
    return make(logits, n);
}

static void test_top_p(void)
{
    /* Probabilities 0.05, 0.5, 0.15, 0.3 (ids 0..3); sorted: 1, 3, 2, 0 with
     * running sums 0.5, 0.8, 0.95, 1. */
    const float probs[] = {0.05f, 0.5f, 0.15f, 0.3f};
    struct {
        float p;
        size_t keep;
    } cases[] = {{0.4f, 1}, {0.75f, 2}, {0.9f, 3}, {0.99f, 4}, {0.0f, 1}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        loft_candidates c = make_probs(probs, 4);
        loft_sample_top_p(&c, cases[k].p);
        CHECKF(c.size == cases[k].keep, "top_p %g kept %zu, want %zu", cases[k].p, c.size,
               cases[k].keep);
        CHECK(c.data[0].id == 1);
        CHECK(fabsf(c.data[0].p - 0.5f) < 1e-6f);
        if (c.size > 1) CHECK(c.data[1].id == 3 && fabsf(c.data[1].p - 0.3f) < 1e-6f);
    }
    loft_candidates c = make_probs(probs, 4);
    loft_sample_top_p(&c, 1.0f); /* off */
    CHECK(c.size == 4 && !c.sorted);
}

static void test_min_p(void)
{
    /* Same probabilities; min_p 0.2 -> threshold 0.1: drops 0.05 (id 0).
     * min_p 0.5 -> threshold 0.25: keeps 0.5 and 0.3. Order is kept. */
    const float probs[] = {0.05f, 0.5f, 0.15f, 0.3f};
    loft_candidates c = make_probs(probs, 4);
    loft_sample_min_p(&c, 0.2f);
    CHECK(c.size == 3 && !has_id(&c, 0) && c.data[0].id == 1 && c.data[2].id == 3);
    c = make_probs(probs, 4);
    loft_sample_min_p(&c, 0.5f);
    CHECK(c.size == 2 && has_id(&c, 1) && has_id(&c, 3));
    c = make_probs(probs, 4);
    loft_sample_min_p(&c, 0.0f);
    CHECK(c.size == 4);
}

static void test_temp_and_softmax(void)
{
    /* Logits 2, 4 at t = 2 become 1, 2: p = e/(e+e^2) = 1/(1+e), e/(1+e). */
    const float logits[] = {2.0f, 4.0f};
    loft_candidates c = make(logits, 2);
    loft_sample_temp(&c, 2.0f);
    CHECK(logit_of(&c, 0) == 1.0f && logit_of(&c, 1) == 2.0f);
    loft_sample_softmax(&c);
    const double e = exp(1.0);
    CHECK(c.sorted && c.data[0].id == 1);
    CHECK(fabs(c.data[0].p - e / (1 + e)) < 1e-6 && fabs(c.data[1].p - 1 / (1 + e)) < 1e-6);
}

static void test_greedy_ties_lowest_id(void)
{
    const float logits[] = {1.0f, 3.0f, 3.0f, 2.0f};
    loft_candidates c = make(logits, 4);
    CHECK(loft_sample_greedy(&c) == 1);
    /* Through the chain with temp 0: the same, whatever the other settings. */
    loft_sampler_params p;
    loft_sampler_params_default(&p);
    p.temp = 0.0f;
    loft_status st;
    loft_sampler *s = NULL;
    CHECK(loft_sampler_init(&s, &p, 4, &st) == LOFT_OK);
    CHECK(loft_sampler_sample(s, logits) == 1);
    loft_sampler_free(s);
}

/* The large-vocabulary paths (partial sorts) must agree with a full sort. */
static void test_large_vocab_matches_full_sort(void)
{
    static float logits[MAXC];
    static loft_candidate ref[MAXC];
    loft_rng r;
    loft_rng_seed(&r, 7);
    for (int i = 0; i < MAXC; i++)
        logits[i] = (float)(loft_rng_uniform(&r) * 20.0 - 10.0);
    logits[100] = logits[200]; /* a tie */
    loft_candidates full = make(logits, MAXC);
    loft_sample_softmax(&full);
    memcpy(ref, full.data, sizeof ref);
    for (int i = 1; i < MAXC; i++)
        CHECK(ref[i - 1].logit > ref[i].logit ||
              (ref[i - 1].logit == ref[i].logit && ref[i - 1].id < ref[i].id));

    const int32_t ks[] = {1, 2, 37, 256, 1000, 8191};
    for (size_t j = 0; j < sizeof ks / sizeof ks[0]; j++) {
        loft_candidates c = make(logits, MAXC);
        loft_sample_top_k(&c, ks[j]);
        CHECK(c.size == (size_t)ks[j]);
        for (int32_t i = 0; i < ks[j]; i++)
            CHECKF(c.data[i].id == ref[i].id, "k %d at %d", ks[j], i);
    }
    /* top-p by hand over the sorted reference. */
    const float ps[] = {0.05f, 0.5f, 0.999f};
    for (size_t j = 0; j < sizeof ps / sizeof ps[0]; j++) {
        float cum = 0.0f;
        size_t want = MAXC;
        for (size_t i = 0; i < MAXC; i++) {
            cum += ref[i].p;
            if (cum >= ps[j]) {
                want = i + 1;
                break;
            }
        }
        loft_candidates c = make(logits, MAXC);
        loft_sample_top_p(&c, ps[j]);
        CHECKF(c.size == want, "top_p %g kept %zu, want %zu", ps[j], c.size, want);
        for (size_t i = 0; i < want; i++)
            CHECK(c.data[i].id == ref[i].id);
    }
}

static void test_seed_reproducible(void)
{
    float logits[50];
    for (int i = 0; i < 50; i++)
        logits[i] = (float)(i % 7) * 0.3f;
    loft_sampler_params p;
    loft_sampler_params_default(&p);
    p.temp = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 42;
    loft_status st;
    loft_sampler *a = NULL, *b = NULL, *c = NULL;
    CHECK(loft_sampler_init(&a, &p, 50, &st) == LOFT_OK);
    CHECK(loft_sampler_init(&b, &p, 50, &st) == LOFT_OK);
    p.seed = 43;
    CHECK(loft_sampler_init(&c, &p, 50, &st) == LOFT_OK);
    int same_ab = 1, same_ac = 1;
    for (int i = 0; i < 200; i++) {
        int32_t x = loft_sampler_sample(a, logits), y = loft_sampler_sample(b, logits),
                z = loft_sampler_sample(c, logits);
        same_ab &= x == y;
        same_ac &= x == z;
    }
    loft_sampler_free(a);
    loft_sampler_free(b);
    loft_sampler_free(c);
    CHECK(same_ab);
    CHECK(!same_ac);
}

/* Pearson's chi-square of counts against probabilities. */
static double chi_square(const int *counts, const double *probs, int k, int n)
{
    double x2 = 0.0;
    for (int i = 0; i < k; i++) {
        double e = probs[i] * n;
        x2 += (counts[i] - e) * (counts[i] - e) / e;
    }
    return x2;
}

static void test_distribution(void)
{
    /* p = 0.5, 0.25, 0.15, 0.1 at temp 1; at temp 0.5 the logits double, so
     * p is proportional to p^2: 0.25, 0.0625, 0.0225, 0.01 over 0.345. The
     * 0.999 quantile of chi-square with 3 degrees of freedom is 16.27. */
    const float probs[] = {0.5f, 0.25f, 0.15f, 0.1f};
    float logits[4];
    for (int i = 0; i < 4; i++)
        logits[i] = logf(probs[i]);
    const float temps[] = {1.0f, 0.5f};
    for (int t = 0; t < 2; t++) {
        double want[4], sum = 0.0;
        for (int i = 0; i < 4; i++)
            sum += want[i] = pow(probs[i], 1.0 / temps[t]);
        for (int i = 0; i < 4; i++)
            want[i] /= sum;
        loft_sampler_params p;
        loft_sampler_params_default(&p);
        p.temp = temps[t];
        p.top_k = 0;
        p.top_p = 1.0f;
        p.min_p = 0.0f;
        p.seed = 1234;
        loft_status st;
        loft_sampler *s = NULL;
        CHECK(loft_sampler_init(&s, &p, 4, &st) == LOFT_OK);
        int counts[4] = {0};
        const int n = 40000;
        for (int i = 0; i < n; i++)
            counts[loft_sampler_sample(s, logits)]++;
        loft_sampler_free(s);
        double x2 = chi_square(counts, want, 4, n);
        CHECKF(x2 < 16.27, "temp %g: chi-square %.2f (counts %d %d %d %d)", temps[t], x2, counts[0],
               counts[1], counts[2], counts[3]);
    }
    /* With top-k 2 only ids 0 and 1 are drawn, in ratio 2:1. */
    loft_sampler_params p;
    loft_sampler_params_default(&p);
    p.temp = 1.0f;
    p.top_k = 2;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 99;
    loft_status st;
    loft_sampler *s = NULL;
    CHECK(loft_sampler_init(&s, &p, 4, &st) == LOFT_OK);
    int counts[4] = {0};
    const int n = 30000;
    for (int i = 0; i < n; i++)
        counts[loft_sampler_sample(s, logits)]++;
    loft_sampler_free(s);
    const double want2[2] = {2.0 / 3.0, 1.0 / 3.0};
    CHECK(counts[2] == 0 && counts[3] == 0);
    double x2 = chi_square(counts, want2, 2, n);
    CHECKF(x2 < 10.83, "top-k 2: chi-square %.2f", x2); /* 0.999 quantile, 1 dof */
}

static void test_penalty_window(void)
{
    /* Window of 2 after accepting 0, 1, 2 holds 1, 2: id 0 (logit 5) is not
     * penalised and wins. With a window of 3 it is (5 / 2 = 2.5) and id 3
     * (logit 4) wins. */
    const float logits[] = {5.0f, 1.0f, 0.0f, 4.0f};
    const int32_t windows[] = {2, 3};
    const int32_t want[] = {0, 3};
    for (int w = 0; w < 2; w++) {
        loft_sampler_params p;
        loft_sampler_params_default(&p);
        p.temp = 0.0f;
        p.repeat_penalty = 2.0f;
        p.repeat_last_n = windows[w];
        loft_status st;
        loft_sampler *s = NULL;
        CHECK(loft_sampler_init(&s, &p, 4, &st) == LOFT_OK);
        for (int32_t t = 0; t < 3; t++)
            loft_sampler_accept(s, t);
        int32_t got = loft_sampler_sample(s, logits);
        loft_sampler_reset(s);
        int32_t after_reset = loft_sampler_sample(s, logits);
        loft_sampler_free(s);
        CHECKF(got == want[w], "window %d chose %d", windows[w], got);
        CHECK(after_reset == 0);
    }
}

static void test_bad_params_refused(void)
{
    loft_sampler_params p;
    loft_sampler_params_default(&p);
    loft_status st;
    loft_sampler *s = NULL;
    CHECK(loft_sampler_init(&s, &p, 0, &st) == LOFT_ERR_ARG && s == NULL);
    p.repeat_last_n = -1;
    CHECK(loft_sampler_init(&s, &p, 10, &st) == LOFT_ERR_ARG && s == NULL);
    loft_sampler_params_default(&p);
    p.top_p = NAN;
    CHECK(loft_sampler_init(&s, &p, 10, &st) == LOFT_ERR_ARG && s == NULL);
}

static void test_rng(void)
{
    loft_rng a, b;
    loft_rng_seed(&a, 5);
    loft_rng_seed(&b, 5);
    for (int i = 0; i < 100; i++)
        CHECK(loft_rng_next(&a) == loft_rng_next(&b));
    int counts[10] = {0};
    double lo = 1.0, hi = 0.0;
    for (int i = 0; i < 50000; i++) {
        double u = loft_rng_uniform(&a);
        if (u < lo) lo = u;
        if (u > hi) hi = u;
        counts[loft_rng_below(&a, 10)]++;
    }
    CHECK(lo >= 0.0 && hi < 1.0 && lo < 0.001 && hi > 0.999);
    double probs[10];
    for (int i = 0; i < 10; i++)
        probs[i] = 0.1;
    double x2 = chi_square(counts, probs, 10, 50000);
    CHECKF(x2 < 27.88, "rng_below chi-square %.2f", x2); /* 0.999 quantile, 9 dof */
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"sample_penalties", test_penalties},
        {"sample_top_k", test_top_k},
        {"sample_top_p", test_top_p},
        {"sample_min_p", test_min_p},
        {"sample_temp_and_softmax", test_temp_and_softmax},
        {"sample_greedy_ties_lowest_id", test_greedy_ties_lowest_id},
        {"sample_large_vocab_matches_full_sort", test_large_vocab_matches_full_sort},
        {"sample_seed_reproducible", test_seed_reproducible},
        {"sample_distribution", test_distribution},
        {"sample_penalty_window", test_penalty_window},
        {"sample_bad_params_refused", test_bad_params_refused},
        {"sample_rng", test_rng},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
