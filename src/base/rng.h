/*
 * rng.h - a small, fast, seedable pseudo-random generator (xoshiro256**,
 * seeded through splitmix64). The same seed gives the same stream on every
 * platform, which is what makes sampled text and training reproducible.
 */
#ifndef LOFT_BASE_RNG_H
#define LOFT_BASE_RNG_H

#include <stdint.h>

typedef struct loft_rng {
    uint64_t s[4];
} loft_rng;

/* Seeds r from a 64-bit seed; any seed (0 included) gives a usable state. */
void loft_rng_seed(loft_rng *r, uint64_t seed);

/* A seed drawn from the clock and the process id, for "-s -1". */
uint64_t loft_rng_time_seed(void);

/* The next 64 random bits. */
uint64_t loft_rng_next(loft_rng *r);

/* A double uniform in [0, 1), with 53 random bits. */
double loft_rng_uniform(loft_rng *r);

/* An integer uniform in [0, n) without modulo bias; n must be > 0. */
uint64_t loft_rng_below(loft_rng *r, uint64_t n);

#endif
