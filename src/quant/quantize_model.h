/*
 * quantize_model.h - rewriting a GGUF model with other tensor types, the way
 * llama-quantize does: every tensor is dequantized to F32 and quantized to
 * the type the chosen file type ("mix") gives it; metadata is copied and
 * general.file_type updated. The per-tensor choices of the K-quant mixes
 * (Q4_K_M, ...) follow llama.cpp's rules for the architectures loft knows
 * (attn_v / ffn_down get more bits on some layers, a tied token embedding
 * or the output matrix get Q6_K, rows whose width is not a multiple of the
 * block size fall back to a 32-block type or F16).
 */
#ifndef LOFT_BENCH_QUANTIZE_MODEL_H
#define LOFT_BENCH_QUANTIZE_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "gguf/gguf.h"
#include "loft.h"

/* A file type as llama.cpp numbers it (general.file_type) and the base
 * tensor type of the mix. */
typedef struct quantize_ftype {
    const char *name;      /* "Q4_K_M" */
    uint32_t ftype;        /* llama_ftype id, 15 for Q4_K_M */
    uint32_t default_type; /* loft_type of most matrices, LOFT_TYPE_Q4_K */
} quantize_ftype;

/* The file type called name (case-insensitive), or NULL. */
const quantize_ftype *quantize_ftype_from_name(const char *name);

/* llama.cpp's name of general.file_type id ftype ("Q4_K_M"), or NULL. */
const char *quantize_ftype_name(uint32_t ftype);

/* The names quantize accepts, for usage messages: a static string. */
const char *quantize_ftype_names(void);

typedef struct quantize_params {
    const quantize_ftype *ftype;
    bool pure;             /* every quantizable matrix gets default_type (no mix rules) */
    bool allow_requantize; /* allow converting tensors that are already quantized */
    int n_threads;         /* <= 0: all online processors */
    FILE *log;             /* warnings; NULL for silence */
    bool verbose;          /* also one line per tensor on log */
} quantize_params;

typedef struct quantize_summary {
    uint64_t bytes_in;  /* tensor data of the source */
    uint64_t bytes_out; /* tensor data written */
    int n_tensors;
    int n_converted;   /* tensors whose type changed */
    int n_requantized; /* converted from an already quantized type */
    int n_fallback;    /* tensors whose row width forced another type */
} quantize_summary;

/* The type each tensor of g would get (types[i] for g->tensors[i]; types has
 * g->n_tensors entries). Fails with LOFT_ERR_UNSUPPORTED when a target type
 * has no quantizer in loft. Does not look at tensor data. */
loft_code quantize_plan(const gguf_file *g, const quantize_params *p, uint32_t *types,
                        int *n_fallback, loft_status *st);

/* Quantizes the model at in_path into out_path (written atomically). sum,
 * when not NULL, receives the counts. Refuses (LOFT_ERR_ARG) to convert an
 * already quantized tensor unless p->allow_requantize. */
loft_code quantize_model(const char *in_path, const char *out_path, const quantize_params *p,
                         quantize_summary *sum, loft_status *st);

#endif
