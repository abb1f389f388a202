/*
 * validate.h - consistency checks of a model file beyond what each key and
 * tensor lookup checks on its own (src/model/model.c).
 *
 * A GGUF file is untrusted input: the container reader bounds every offset,
 * the loader checks each tensor it reads against the shape the
 * hyperparameters give, and these checks tie the rest together: the
 * hyperparameters against each other and against sane ranges, and every
 * tensor of the file against the architecture (a tensor the forward pass
 * would not read, or a layer past block_count, means the file is not what
 * its metadata says). Each failure names the file and the key or tensor.
 */
#ifndef LOFT_MODEL_VALIDATE_H
#define LOFT_MODEL_VALIDATE_H

#include "loft.h"
#include "model/model.h"

/* Largest context length a file may declare (the CLI's -c limit too). */
#define MODEL_MAX_CTX_TRAIN (1 << 24)
/* RMSNorm epsilon must lie in (0, MODEL_MAX_NORM_EPS]: zero divides by zero
 * on an all-zero row, and real models use 1e-6 .. 1e-5. */
#define MODEL_MAX_NORM_EPS 0.1

/* Checks m's hyperparameters after they were read (model_load_common):
 * embedding_length a multiple of head_count when key_length is absent (the
 * head width is derived from it), the norm epsilon in range, the declared
 * context length in [1, MODEL_MAX_CTX_TRAIN]. LOFT_ERR_FORMAT naming the key
 * on failure. */
loft_code model_validate_hparams(const loft_model *m, loft_status *st);

/* Checks, after every tensor was loaded, that each tensor of the file is
 * one the architecture reads (blk.N.<name> with N < block_count and a name
 * the architecture's forward uses, or a known global tensor) and that the
 * rope frequency divisors are finite and positive. LOFT_ERR_FORMAT naming
 * the tensor on failure. */
loft_code model_validate_tensors(const loft_model *m, loft_status *st);

#endif
