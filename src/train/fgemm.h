/*
 * fgemm.h - F32 matrix products for training: a blocked GEMM kernel (an
 * AVX-512 body picked at run time, a portable one otherwise) and the two
 * products through a frozen weight of any type, which dequantize the weight
 * one tile at a time into per-thread scratch (never the whole matrix).
 *
 * Numerics: every output element is summed over k in increasing order, one
 * multiply-add per term, starting from 0 (or from C when accumulating).
 * Threads split the columns (the rows when N <= 16) and tiles never change
 * that order, so results do not depend on the thread count.
 *
 * Shapes: a matrix (R, S) with leading dimension ld is R rows of S floats,
 * row i starting ld floats after row i - 1.
 */
#ifndef LOFT_TRAIN_FGEMM_H
#define LOFT_TRAIN_FGEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/threadpool.h"
#include "model/layers.h"

/* C: (M, N) (ldc) = A: (M, K) (lda) times B: (K, N) (ldb), or += when
 * accumulate. pool may be NULL (the caller alone). C must not overlap A or
 * B. */
void fgemm(threadpool *pool, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
           const float *B, int64_t ldb, float *C, int64_t ldc, bool accumulate);

/* Floats of scratch one thread needs for fgemm_w_forward/backward on
 * weights of at most max_in inputs (0 when the size overflows). */
size_t fgemm_w_scratch(int64_t max_in);

/* y: (T, w.n_out) = x: (T, w.n_in) times W transposed. scratch:
 * threadpool_size(pool) * fgemm_w_scratch(w.n_in) floats. The weight type
 * must have a dequantizer. */
void fgemm_w_forward(threadpool *pool, float *y, const float *x, int64_t T, const model_weight *w,
                     float *scratch);

/* dx: (T, w.n_in) += dy: (T, w.n_out) times W. scratch as above. */
void fgemm_w_backward(threadpool *pool, float *dx, const float *dy, int64_t T,
                      const model_weight *w, float *scratch);

/* dx: (T, n_in) += dys[i] W_i for i = 0..n-1 in that order, in one pass over
 * the pool (one hand-off instead of n): the same bits as n calls of
 * fgemm_w_backward. Every ws[i] has n_in inputs; dys[i] is (T, ws[i].n_out). */
void fgemm_w_backward_multi(threadpool *pool, float *dx, int n, const float *const *dys,
                            const model_weight *const *ws, int64_t T, float *scratch);

/* The name of the kernel body in use: "avx512" or "portable" (LOFT_ISA=ref
 * forces the portable one). */
const char *fgemm_isa(void);

#endif
