/*
 * merge_queue.h - the priority queue of adjacent symbol pairs that both BPE
 * flavours merge from: byte-level BPE by lowest merge rank, SentencePiece
 * by highest token score. A pair with the smaller priority comes out first;
 * equal priorities come out leftmost first, as llama.cpp merges them.
 */
#ifndef LOFT_TEXT_MERGE_QUEUE_H
#define LOFT_TEXT_MERGE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct merge_pair {
    int left, right;  /* symbol indices */
    double priority;  /* smaller first: a merge rank, or minus a score */
    size_t size;      /* bytes of left + right when queued (detects stale pairs) */
} merge_pair;

typedef struct merge_queue {
    merge_pair *a;
    size_t n, cap;
} merge_queue;

/* Adds p; false when memory runs out (the queue is unchanged). */
bool merge_queue_push(merge_queue *q, merge_pair p);

/* Removes and returns the first pair; q->n must be > 0. */
merge_pair merge_queue_pop(merge_queue *q);

/* Frees the storage; the queue may be reused after (empty). */
void merge_queue_free(merge_queue *q);

#endif
