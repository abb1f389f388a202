/*
 * cmd_merge.c - `loft merge -m BASE --lora A.gguf [--lora-scaled B.gguf S]
 * -o OUT.gguf [--type T]`: writes a model with LoRA adapters folded into
 * its weights (llama.cpp's llama-export-lora command line).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "quant/quant.h"
#include "train/merge.h"

#define MERGE_MAX_ADAPTERS 16

static void usage(FILE *out)
{
    fprintf(out,
            "usage: loft merge -m BASE.gguf --lora A.gguf [--lora-scaled B.gguf S ...] -o OUT.gguf "
            "[--type T]\n\n"
            "  -m, --model FILE        the base model\n"
            "  --lora FILE             an adapter to fold in with scale 1 (repeatable)\n"
            "  --lora-scaled FILE S    an adapter with user scale S (repeatable)\n"
            "  -o, --output FILE       the merged model (written atomically)\n"
            "  --type T                type of the merged matrices: F32, F16, BF16, Q8_0, Q4_0,\n"
            "                          Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, ... (default: each\n"
            "                          base tensor's own type, F16 where loft cannot write it)\n"
            "  -t, --threads N         accepted for llama.cpp compatibility (merging is one pass)\n\n"
            "Every adapted matrix becomes W + sum(scale * alpha / r * B A); all other tensors\n"
            "and the metadata are copied unchanged.\n");
}

static int parse_scale(const char *s, float *out)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == 0 || *end != 0 || !(v > -1e6 && v < 1e6)) return 0;
    *out = (float)v;
    return 1;
}

int cmd_merge(int argc, char **argv)
{
    const char *base = NULL, *out_path = NULL, *type_name = NULL;
    merge_adapter ads[MERGE_MAX_ADAPTERS];
    size_t n_ads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const bool has1 = i + 1 < argc, has2 = i + 2 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has1) {
            base = argv[++i];
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--output")) && has1) {
            out_path = argv[++i];
        } else if (!strcmp(a, "--type") && has1) {
            type_name = argv[++i];
        } else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && has1) {
            i++;
        } else if (!strcmp(a, "--lora") && has1) {
            if (n_ads == MERGE_MAX_ADAPTERS) {
                fprintf(stderr, "loft merge: at most %d adapters\n", MERGE_MAX_ADAPTERS);
                return 2;
            }
            ads[n_ads++] = (merge_adapter){argv[++i], 1.0f};
        } else if (!strcmp(a, "--lora-scaled") && has2) {
            if (n_ads == MERGE_MAX_ADAPTERS) {
                fprintf(stderr, "loft merge: at most %d adapters\n", MERGE_MAX_ADAPTERS);
                return 2;
            }
            float s;
            if (!parse_scale(argv[i + 2], &s)) {
                fprintf(stderr, "loft merge: --lora-scaled: invalid scale '%s'\n", argv[i + 2]);
                return 2;
            }
            ads[n_ads++] = (merge_adapter){argv[i + 1], s};
            i += 2;
        } else if (a[0] == '-') {
            fprintf(stderr, "loft merge: unknown option or missing value '%s' (see --help)\n", a);
            return 2;
        } else {
            fprintf(stderr, "loft merge: unexpected argument '%s' (see --help)\n", a);
            return 2;
        }
    }
    if (!base || !out_path || n_ads == 0) {
        fprintf(stderr, "loft merge: -m BASE, -o OUT and at least one --lora are required "
                        "(see --help)\n");
        return 2;
    }
    merge_params p = {.adapters = ads, .n_adapters = n_ads, .out_type = -1};
    if (type_name) {
        p.out_type = loft_type_from_name(type_name);
        const loft_type_traits *tt = p.out_type >= 0 ? loft_type_get((uint32_t)p.out_type) : NULL;
        if (!tt || !tt->can_quantize || p.out_type == LOFT_TYPE_Q8_1 ||
            p.out_type == LOFT_TYPE_Q8_K) {
            fprintf(stderr, "loft merge: --type: loft cannot write type '%s'\n", type_name);
            return 2;
        }
    }
    loft_status st = {0};
    merge_summary sum;
    if (merge_model(base, &p, out_path, &sum, &st) != LOFT_OK) {
        fprintf(stderr, "loft merge: %s\n", st.msg);
        return 1;
    }
    fprintf(stderr,
            "loft merge: %d matrices merged (%lld parameters), %d written as F16 for want of a "
            "quantizer or block fit; %d tensors written to %s\n",
            sum.n_merged, (long long)sum.n_params_changed, sum.n_fallback, sum.n_tensors, out_path);
    return 0;
}
