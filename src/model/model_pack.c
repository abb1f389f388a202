/* model_pack.c - packed copies of the weight matrices (kernels_pack) made
 * once at load for the kernel set in use, which then reads them instead of
 * the GGUF rows. The mapped pages the copy replaces leave the resident set
 * (they are read back from the file if anything else touches them, as the
 * trainer's F32 path does), so the process holds each weight once. */
#include <stdint.h>
#include <stdlib.h>
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

/* Packing is an optimisation only: a model whose copy does not fit in
 * memory runs from the mapping. A tied output matrix is also the embedding
 * table: its pages stay resident. */
void model_pack_weights(loft_model *m)
{
    const int cap = 7 * m->hp.n_layer + 1;
    model_weight **list = malloc((size_t)cap * sizeof *list);
    if (!list) return;
    const int n = model_matrices(m, list, cap);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const size_t b = kernels_pack_size(m->kt, list[i]->type, list[i]->n_in, list[i]->n_out);
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
            const size_t b = kernels_pack_size(m->kt, w->type, w->n_in, w->n_out);
            if (b == 0) continue;
            void *dst = (char *)m->packed + at;
            kernels_pack(w->type, w->data, w->row_bytes, w->n_in, w->n_out, dst);
            w->packed = dst;
            at += (b + 63) / 64 * 64;
            const size_t rows = (size_t)(w->n_out / KERNELS_PACK_ROWS * KERNELS_PACK_ROWS);
            if (w->data != m->tok_embd.data)
                gguf_release_pages(m->gguf, w->data, w->row_bytes * rows);
        }
    }
    free(list);
}
