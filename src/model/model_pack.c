/* model_pack.c - copies of the weight matrices made once at load, in
 * memory backed by 2 MiB pages where the kernel grants them: packed
 * (kernels_pack) for the types the kernel set has a layout for, the GGUF
 * rows as they are for the others. The kernels then read the copies. The
 * mapped pages a copy replaces leave the resident set (they are read back
 * from the file if anything else touches them, as the trainer's F32 path
 * does), so the process holds each weight once.
 *
 * Why copy at all: decoding streams every weight once per token, and a
 * file mapping is made of 4 KiB pages, each a TLB miss and a restart of
 * the hardware prefetcher. On the development machine one thread read a
 * 257 MiB F16 model at 21-22 GB/s from the file mapping and at 29-30 GB/s
 * from a 2 MiB-page copy (same process, alternating). LOFT_MMAP=1 keeps
 * the unpacked weights in the file mapping. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "gguf/gguf.h"
#include "kernels/kernels.h"
#include "model/model_impl.h"

/* The matrices the forward multiplies by (the 8-bit path). */
static int model_matrices(loft_model *m, model_weight **list, int cap)
{
    int n = 0;
    for (int32_t il = 0; il < m->hp.n_layer; il++) {
        model_layer *l = &m->layers[il];
        model_weight *ws[] = {&l->wq,       &l->wk,     &l->wv,      &l->wo,
                              &l->ffn_gate, &l->ffn_up, &l->ffn_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
            if (ws[i]->data && n < cap) list[n++] = ws[i];
    }
    if (m->output.data && n < cap) list[n++] = &m->output;
    return n;
}

/* Bytes of w's copy: its packed layout, or (plain) its rows as they are;
 * 0 for no copy. */
static size_t model_copy_size(const loft_model *m, const model_weight *w, bool plain_copies,
                              bool *plain)
{
    const size_t b = kernels_pack_size(m->kt, w->type, w->n_in, w->n_out);
    *plain = b == 0 && plain_copies;
    if (!*plain) return b;
    return w->n_out > 0 && w->row_bytes > SIZE_MAX / (size_t)w->n_out
               ? 0
               : w->row_bytes * (size_t)w->n_out;
}

/* The vectors of the forward (norm gains, biases, rope divisors), copied
 * to the heap. Each sits between matrices in the file, and the page cache
 * may hold the file in large folios that a fault maps whole: touching one
 * 2 KiB norm put up to 2 MiB of the file around it into the resident set
 * (80 MiB over a forward pass of SmolLM2), although the matrices there
 * had been copied. Quietly skipped if the heap is short. */
static void model_copy_vectors(loft_model *m)
{
    const size_t cap = 2 + 10 * (size_t)m->hp.n_layer;
    model_weight **list = malloc(cap * sizeof *list);
    if (!list) return;
    size_t n = 0;
    list[n++] = &m->output_norm;
    list[n++] = &m->rope_freqs;
    for (int32_t il = 0; il < m->hp.n_layer; il++) {
        model_layer *l = &m->layers[il];
        model_weight *ws[] = {&l->attn_norm, &l->bq,           &l->bk,       &l->bv,
                              &l->bo,        &l->q_norm,       &l->k_norm,   &l->attn_post_norm,
                              &l->ffn_norm,  &l->ffn_post_norm};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) list[n++] = ws[i];
    }
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (list[i]->data) total += (list[i]->row_bytes * (size_t)list[i]->n_out + 63) / 64 * 64;
    if (total == 0 || !(m->vectors = aligned_alloc(64, total))) {
        free(list);
        return;
    }
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        model_weight *w = list[i];
        if (!w->data) continue;
        const size_t b = w->row_bytes * (size_t)w->n_out;
        memcpy((char *)m->vectors + at, w->data, b);
        w->data = (char *)m->vectors + at;
        at += (b + 63) / 64 * 64;
    }
    free(list);
}

/* Copying is an optimisation only: a model whose copy does not fit in
 * memory runs from the mapping. A tied output matrix is also the embedding
 * table: a packed copy leaves its pages resident for the lookups, a plain
 * one serves the lookups too. */
void model_pack_weights(loft_model *m)
{
    const char *env = getenv("LOFT_MMAP");
    const bool plain_copies = !(env && env[0] && strcmp(env, "0") != 0);
    if (plain_copies) model_copy_vectors(m);
    const int cap = 7 * m->hp.n_layer + 1;
    model_weight **list = malloc((size_t)cap * sizeof *list);
    if (!list) return;
    const int n = model_matrices(m, list, cap);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        bool plain;
        const size_t b = model_copy_size(m, list[i], plain_copies, &plain);
        if (b > SIZE_MAX - total - 64) {
            free(list);
            return;
        }
        total += (b + 63) / 64 * 64;
    }
    const size_t huge = (size_t)2 << 20;
    if (total > 0 && total <= SIZE_MAX - huge) total = (total + huge - 1) / huge * huge;
    if (total > 0 && (m->packed = aligned_alloc(huge, total)) != NULL) {
        /* 2 MiB pages where the kernel grants them: the kernels stream the
         * whole copy once per token, and 4 KiB pages cost a TLB miss and a
         * prefetcher restart every 4 KiB. */
        (void)madvise(m->packed, total, MADV_HUGEPAGE);
        size_t at = 0;
        for (int i = 0; i < n; i++) {
            model_weight *w = list[i];
            bool plain;
            const size_t b = model_copy_size(m, w, plain_copies, &plain);
            if (b == 0) continue;
            void *dst = (char *)m->packed + at;
            at += (b + 63) / 64 * 64;
            if (plain) {
                /* in pieces, each piece's mapped pages dropped as soon as
                 * it is copied: the peak holds one piece twice, not one
                 * matrix (a tied output table is tens of MiB) */
                const char *src = w->data;
                const size_t piece = (size_t)4 << 20;
                for (size_t o = 0; o < b; o += piece) {
                    const size_t len = b - o < piece ? b - o : piece;
                    memcpy((char *)dst + o, src + o, len);
                    gguf_release_pages(m->gguf, src + o, len);
                }
                if (w->data == m->tok_embd.data) m->tok_embd.data = dst;
                w->data = dst;
                continue;
            }
            kernels_pack(w->type, w->data, w->row_bytes, w->n_in, w->n_out, dst);
            w->packed = dst;
            const size_t rows = (size_t)(w->n_out / KERNELS_PACK_ROWS * KERNELS_PACK_ROWS);
            if (w->data != m->tok_embd.data)
                gguf_release_pages(m->gguf, w->data, w->row_bytes * rows);
        }
    }
    free(list);
}
