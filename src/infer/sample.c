#include "infer/sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/status.h"

void loft_sampler_params_default(loft_sampler_params *p)
{
    p->temp = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->presence_penalty = 0.0f;
    p->frequency_penalty = 0.0f;
    p->seed = 0;
}

/* ---- ordering -------------------------------------------------------- */

/* Descending logit; equal logits by ascending id, so every order is total
 * and results never depend on the sort algorithm. */
static int cand_before(const loft_candidate *a, const loft_candidate *b)
{
    if (a->logit != b->logit) return a->logit > b->logit;
    return a->id < b->id;
}

static int cand_cmp(const void *pa, const void *pb)
{
    const loft_candidate *a = pa, *b = pb;
    if (cand_before(a, b)) return -1;
    if (cand_before(b, a)) return 1;
    return 0;
}

static void cand_swap(loft_candidate *a, loft_candidate *b)
{
    loft_candidate t = *a;
    *a = *b;
    *b = t;
}

/* Moves the k first candidates (in cand_before order) to data[0..k) and sorts
 * them; the rest stay after them in no particular order. Quickselect with a
 * median-of-three pivot, then a sort of the small front. */
static void partial_sort(loft_candidates *c, size_t k)
{
    if (k >= c->size) {
        qsort(c->data, c->size, sizeof *c->data, cand_cmp);
        c->sorted = true;
        return;
    }
    loft_candidate *d = c->data;
    size_t lo = 0, hi = c->size - 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cand_before(&d[mid], &d[lo])) cand_swap(&d[mid], &d[lo]);
        if (cand_before(&d[hi], &d[lo])) cand_swap(&d[hi], &d[lo]);
        if (cand_before(&d[hi], &d[mid])) cand_swap(&d[hi], &d[mid]);
        loft_candidate pivot = d[mid];
        size_t i = lo, j = hi;
        while (i <= j) {
            while (cand_before(&d[i], &pivot))
                i++;
            while (cand_before(&pivot, &d[j]))
                j--;
            if (i <= j) {
                cand_swap(&d[i], &d[j]);
                i++;
                if (j == 0) break;
                j--;
            }
        }
        /* Now d[lo..j] <= pivot-ish front, d[i..hi] back. */
        if (k - 1 <= j)
            hi = j;
        else if (k - 1 >= i)
            lo = i;
        else
            break;
    }
    qsort(d, k, sizeof *d, cand_cmp);
}

/* ---- stages ---------------------------------------------------------- */

static int int32_cmp(const void *pa, const void *pb)
{
    int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    return (a > b) - (a < b);
}

/* Index of the candidate with this id, or -1. Candidates still in id order
 * (the usual case, straight after the logits are copied) are found at once. */
static ptrdiff_t find_id(const loft_candidates *c, int32_t id)
{
    if (id >= 0 && (size_t)id < c->size && c->data[id].id == id) return id;
    for (size_t i = 0; i < c->size; i++)
        if (c->data[i].id == id) return (ptrdiff_t)i;
    return -1;
}

static void penalise(loft_candidates *c, int32_t id, size_t count, float repeat, float frequency,
                     float presence)
{
    ptrdiff_t i = find_id(c, id);
    if (i < 0) return;
    float *l = &c->data[i].logit;
    if (*l <= 0)
        *l *= repeat;
    else
        *l /= repeat;
    *l -= (float)count * frequency + (count > 0 ? presence : 0.0f);
}

void loft_sample_penalties(loft_candidates *c, const int32_t *last, size_t n_last, float repeat,
                           float frequency, float presence)
{
    if (n_last == 0 || (repeat == 1.0f && frequency == 0.0f && presence == 0.0f)) return;
    int32_t *ids = malloc(n_last * sizeof *ids);
    if (ids) {
        memcpy(ids, last, n_last * sizeof *ids);
        qsort(ids, n_last, sizeof *ids, int32_cmp);
        for (size_t i = 0; i < n_last;) {
            size_t j = i;
            while (j < n_last && ids[j] == ids[i])
                j++;
            penalise(c, ids[i], j - i, repeat, frequency, presence);
            i = j;
        }
        free(ids);
    } else {
        /* No memory for the sort: count each distinct id the slow way. */
        for (size_t i = 0; i < n_last; i++) {
            bool seen = false;
            for (size_t j = 0; j < i && !seen; j++)
                seen = last[j] == last[i];
            if (seen) continue;
            size_t count = 0;
            for (size_t j = i; j < n_last; j++)
                count += last[j] == last[i];
            penalise(c, last[i], count, repeat, frequency, presence);
        }
    }
    c->sorted = false;
}

void loft_sample_top_k(loft_candidates *c, int32_t k)
{
    if (k <= 0) return;
    size_t kk = (size_t)k < c->size ? (size_t)k : c->size;
    if (!c->sorted) partial_sort(c, kk);
    c->size = kk;
    c->sorted = true;
}

/* Fills p with softmax probabilities in the current order (no sorting). */
static void softmax_in_place(loft_candidates *c)
{
    if (c->size == 0) return;
    float max = c->data[0].logit;
    for (size_t i = 1; i < c->size; i++)
        if (c->data[i].logit > max) max = c->data[i].logit;
    double sum = 0.0;
    for (size_t i = 0; i < c->size; i++) {
        float e = expf(c->data[i].logit - max);
        c->data[i].p = e;
        sum += e;
    }
    for (size_t i = 0; i < c->size; i++)
        c->data[i].p = (float)(c->data[i].p / sum);
}

void loft_sample_top_p(loft_candidates *c, float p)
{
    if (p >= 1.0f || c->size == 0) return;
    softmax_in_place(c);
    /* Most of the mass is usually in a few hundred tokens: sort those
     * first and sort everything only when they do not reach p. */
    size_t sorted_upto = c->size;
    if (!c->sorted) {
        sorted_upto = c->size > 1024 ? 256 : c->size;
        partial_sort(c, sorted_upto);
    }
    float cum = 0.0f;
    size_t keep = c->size;
    for (size_t i = 0; i < c->size; i++) {
        if (i == sorted_upto) {
            partial_sort(c, c->size);
            sorted_upto = c->size;
        }
        cum += c->data[i].p;
        if (cum >= p) {
            keep = i + 1;
            break;
        }
    }
    if (sorted_upto < keep) partial_sort(c, c->size);
    c->size = keep;
    c->sorted = true;
}

void loft_sample_min_p(loft_candidates *c, float min_p)
{
    if (min_p <= 0.0f || c->size == 0) return;
    float max = c->data[0].logit;
    if (!c->sorted)
        for (size_t i = 1; i < c->size; i++)
            if (c->data[i].logit > max) max = c->data[i].logit;
    float threshold = max + logf(min_p);
    size_t n = 0;
    for (size_t i = 0; i < c->size; i++)
        if (c->data[i].logit >= threshold) c->data[n++] = c->data[i];
    c->size = n ? n : 1;
}

void loft_sample_temp(loft_candidates *c, float t)
{
    for (size_t i = 0; i < c->size; i++)
        c->data[i].logit /= t;
}

void loft_sample_softmax(loft_candidates *c)
{
    if (!c->sorted) partial_sort(c, c->size);
    c->sorted = true;
    softmax_in_place(c);
}

int32_t loft_sample_dist(loft_candidates *c, loft_rng *rng)
{
    if (c->size == 0) return -1;
    float max = c->data[0].logit;
    for (size_t i = 1; i < c->size; i++)
        if (c->data[i].logit > max) max = c->data[i].logit;
    double sum = 0.0;
    for (size_t i = 0; i < c->size; i++)
        sum += exp((double)(c->data[i].logit - max));
    double target = loft_rng_uniform(rng) * sum, acc = 0.0;
    for (size_t i = 0; i < c->size; i++) {
        acc += exp((double)(c->data[i].logit - max));
        if (target < acc) return c->data[i].id;
    }
    /* Rounding left target at the very top: the last candidate with mass. */
    for (size_t i = c->size; i-- > 0;)
        if (c->data[i].logit > -INFINITY) return c->data[i].id;
    return c->data[c->size - 1].id;
}

int32_t loft_sample_greedy(const loft_candidates *c)
{
    if (c->size == 0) return -1;
    size_t best = 0;
    for (size_t i = 1; i < c->size; i++)
        if (cand_before(&c->data[i], &c->data[best])) best = i;
    return c->data[best].id;
}

/* ---- the chain ------------------------------------------------------- */

struct loft_sampler {
    loft_sampler_params params;
    int32_t n_vocab;
    loft_candidate *cands;
    int32_t *window; /* ring of the last repeat_last_n accepted tokens */
    size_t window_cap, window_len, window_head;
    int32_t *window_flat; /* the ring unrolled, for loft_sample_penalties */
    loft_rng rng;
};

loft_code loft_sampler_init(loft_sampler **out, const loft_sampler_params *p, int32_t n_vocab,
                            loft_status *st)
{
    *out = NULL;
    if (n_vocab <= 0) return loft_fail(st, LOFT_ERR_ARG, "sampler: vocabulary size %d", n_vocab);
    if (p->repeat_last_n < 0)
        return loft_fail(st, LOFT_ERR_ARG, "sampler: repeat_last_n %d is negative",
                         p->repeat_last_n);
    if (!(p->top_p >= 0.0f) || !(p->min_p >= 0.0f) || !(p->repeat_penalty > 0.0f) ||
        isnan(p->temp) || isnan(p->presence_penalty) || isnan(p->frequency_penalty))
        return loft_fail(st, LOFT_ERR_ARG,
                         "sampler: top_p/min_p must be >= 0, repeat penalty > 0, no NaN values");
    loft_sampler *s = calloc(1, sizeof *s);
    if (!s) return loft_fail(st, LOFT_ERR_NOMEM, "sampler: out of memory");
    s->params = *p;
    s->n_vocab = n_vocab;
    s->window_cap = (size_t)p->repeat_last_n;
    s->cands = malloc((size_t)n_vocab * sizeof *s->cands);
    if (s->window_cap) {
        s->window = malloc(s->window_cap * sizeof *s->window);
        s->window_flat = malloc(s->window_cap * sizeof *s->window_flat);
    }
    if (!s->cands || (s->window_cap && (!s->window || !s->window_flat))) {
        loft_sampler_free(s);
        return loft_fail(st, LOFT_ERR_NOMEM, "sampler: out of memory for %d candidates", n_vocab);
    }
    loft_rng_seed(&s->rng, p->seed);
    *out = s;
    return LOFT_OK;
}

void loft_sampler_free(loft_sampler *s)
{
    if (!s) return;
    free(s->cands);
    free(s->window);
    free(s->window_flat);
    free(s);
}

void loft_sampler_accept(loft_sampler *s, int32_t token)
{
    if (!s->window_cap) return;
    s->window[s->window_head] = token;
    s->window_head = (s->window_head + 1) % s->window_cap;
    if (s->window_len < s->window_cap) s->window_len++;
}

void loft_sampler_reset(loft_sampler *s)
{
    s->window_len = 0;
    s->window_head = 0;
}

int32_t loft_sampler_sample(loft_sampler *s, const float *logits)
{
    const loft_sampler_params *p = &s->params;
    for (int32_t i = 0; i < s->n_vocab; i++) {
        s->cands[i].id = i;
        s->cands[i].logit = logits[i];
        s->cands[i].p = 0.0f;
    }
    loft_candidates c = {s->cands, (size_t)s->n_vocab, false};
    size_t n = s->window_len;
    for (size_t i = 0; i < n; i++)
        s->window_flat[i] = s->window[(s->window_head + s->window_cap - n + i) % s->window_cap];
    loft_sample_penalties(&c, s->window_flat, n, p->repeat_penalty, p->frequency_penalty,
                          p->presence_penalty);
    if (p->temp <= 0.0f) return loft_sample_greedy(&c);
    loft_sample_top_k(&c, p->top_k);
    loft_sample_top_p(&c, p->top_p);
    loft_sample_min_p(&c, p->min_p);
    loft_sample_temp(&c, p->temp);
    return loft_sample_dist(&c, &s->rng);
}
