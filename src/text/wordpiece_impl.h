/* wordpiece_impl.h - the generated folding table behind wordpiece.c. */
#ifndef LOFT_TEXT_WORDPIECE_IMPL_H
#define LOFT_TEXT_WORDPIECE_IMPL_H

#include <stddef.h>
#include <stdint.h>

/* Code point cpt folds to to[0..n) (n = 0: it is dropped). Sorted by cpt. */
typedef struct wordpiece_fold {
    uint32_t cpt;
    uint8_t n;
    uint32_t to[3];
} wordpiece_fold;

extern const wordpiece_fold wordpiece_folds[];
extern const size_t wordpiece_n_folds;

#endif
