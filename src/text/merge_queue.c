/* merge_queue.c - a binary min-heap of merge_pair. */
#include "text/merge_queue.h"

#include <stdint.h>
#include <stdlib.h>

/* True when x must come out of the queue before y. */
static bool pair_before(const merge_pair *x, const merge_pair *y)
{
    return x->priority < y->priority || (x->priority == y->priority && x->left < y->left);
}

bool merge_queue_push(merge_queue *q, merge_pair p)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 32;
        if (cap > SIZE_MAX / sizeof *q->a) return false;
        merge_pair *a = realloc(q->a, cap * sizeof *a);
        if (!a) return false;
        q->a = a;
        q->cap = cap;
    }
    size_t i = q->n++;
    while (i > 0 && pair_before(&p, &q->a[(i - 1) / 2])) {
        q->a[i] = q->a[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    q->a[i] = p;
    return true;
}

merge_pair merge_queue_pop(merge_queue *q)
{
    merge_pair top = q->a[0];
    merge_pair last = q->a[--q->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && pair_before(&q->a[c + 1], &q->a[c])) c++;
        if (!pair_before(&q->a[c], &last)) break;
        q->a[i] = q->a[c];
        i = c;
    }
    if (q->n > 0) q->a[i] = last;
    return top;
}

void merge_queue_free(merge_queue *q)
{
    free(q->a);
    q->a = NULL;
    q->n = q->cap = 0;
}
