/*
 * layers.h - the layer functions every architecture's forward is built from.
 *
 * Shapes are written row-major, slowest dimension first: x: (T, C) is T rows
 * of C floats. These are the reference (scalar, single-threaded) versions;
 * the only hot spot, matmul_qw, is one small function so a faster kernel can
 * replace it without touching the architectures.
 */
#ifndef LOFT_MODEL_LAYERS_H
#define LOFT_MODEL_LAYERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A 1-D or 2-D weight: a view into the model file. A 2-D weight is n_out
 * rows of n_in values of ggml type `type`, row_bytes apart (ggml's ne0 is
 * n_in, ne1 is n_out). A 1-D weight has n_out == 1. data == NULL means the
 * (optional) tensor is absent. */
typedef struct model_weight {
    const void *data;
    uint32_t type;
    int64_t n_in;
    int64_t n_out;
    size_t row_bytes;
    const void *packed; /* kernels_pack's copy for the model's kernel set, or NULL */
} model_weight;

/* Rope settings of one layer. freq_factors (n_rot/2 floats, or NULL)
 * divide the per-pair angle, as llama.cpp applies rope_freqs.weight. */
typedef struct rope_params {
    int32_t n_rot;      /* even, <= head_dim */
    bool neox;          /* pair (i, i + n_rot/2) instead of (2i, 2i+1) */
    float freq_base;
    float freq_scale;
    const float *freq_factors;
} rope_params;

/* y: (T, w.n_out) = x: (T, w.n_in) times w transposed; each weight row is
 * dequantized once into row_buf (w.n_in floats) and dotted in F32 with
 * every token. y must not alias x. */
void matmul_qw(float *y, const float *x, const model_weight *w, int64_t T, float *row_buf);

/* Adds bias b (n floats) to each of the T rows of x: (T, n). */
void add_bias(float *x, const float *b, int64_t T, int64_t n);

/* Dot product of n floats, summed in a fixed order (deterministic). */
float dot_f32(const float *a, const float *b, int64_t n);

/* out: (T, n) = x / sqrt(mean(x^2) + eps) * w, row by row; w may be NULL
 * (no gain). out may alias x. */
void rmsnorm_forward(float *out, const float *x, const float *w, int64_t T, int64_t n, float eps);

/* Fills cs (n_rot floats: cos, sin pairs) with the rotation of position
 * pos, computed as ggml does (theta_i = pos * base^(-2i/n_rot), stepped by
 * repeated multiplication in float, divided by freq_factors[i], times
 * freq_scale). */
void rope_cache(float *cs, int32_t pos, const rope_params *rp);

/* Rotates the first n_rot dims of each of the n_heads heads of x:
 * (n_heads, head_dim) in place by the rotation cs from rope_cache. */
void rope_apply(float *x, int32_t n_heads, int32_t head_dim, const float *cs,
                const rope_params *rp);

/* Attention of one query token at position pos over the keys at positions
 * 0..pos (causal), restricted to pos - p < window when window > 0.
 *   q: (n_head, head_dim)     K: (n_kv, n_head_kv * head_dim), n_kv > pos
 *   out: (n_head, head_dim_v) V: (n_kv, n_head_kv * head_dim_v)
 * Query head h reads kv head h / (n_head / n_head_kv). Scores are
 * scale * q.k, then softcap * tanh(s / softcap) when softcap > 0, then
 * softmax. scores is scratch of pos + 1 floats. */
typedef struct attn_shape {
    int32_t n_head;
    int32_t n_head_kv;
    int32_t head_dim;
    int32_t head_dim_v;
    int32_t window; /* 0 = full causal */
    float scale;
    float softcap;  /* 0 = none */
} attn_shape;

void attention_forward(float *out, const float *q, const float *K, const float *V, int32_t pos,
                       const attn_shape *as, float *scores);

/* out: (T, n) = silu(gate) * up (SwiGLU). out may alias gate. */
void swiglu_forward(float *out, const float *gate, const float *up, int64_t T, int64_t n);

/* out[i] = silu(gate[i]) * up[i] for n values as ggml's CPU backend
 * computes it (AVX-512 build): e^-g by ggml's vector expf for all but the
 * last n % 16 values, libm's expf for those. out may alias gate. */
void swiglu_ggml_forward(float *out, const float *gate, const float *up, int64_t n);

/* out: (T, n) = gelu(gate) * up with ggml's tanh approximation of gelu.
 * out may alias gate. */
void geglu_forward(float *out, const float *gate, const float *up, int64_t T, int64_t n);

/* gelu by the tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
float gelu_tanh(float x);

/* x[i] = cap * tanh(x[i] / cap) for n values; cap > 0. */
void softcap_apply(float *x, int64_t n, float cap);

/* dst (table.n_in floats) = row `id` of the embedding table, dequantized,
 * times scale. id must be in [0, table.n_out). */
void embedding_lookup(float *dst, const model_weight *table, int32_t id, float scale);

/* The F32 data of a 1-D weight (loading guarantees the type), or NULL. */
static inline const float *weight_f32(const model_weight *w)
{
    return (const float *)w->data;
}

#endif
