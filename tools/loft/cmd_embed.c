/*
 * cmd_embed.c - `loft embed -m MODEL (-p TEXT | -f FILE) [--json] [--tokens]`:
 * sentence embeddings from a bert encoder (src/model/bert.h): mean pooling
 * and L2 normalisation, as sentence-transformers computes them.
 *
 * -p embeds one text; -f embeds every non-empty line of FILE. The plain
 * output is one line per text: the n_embd components separated by spaces.
 * --json prints {"model", "n_embd", "embeddings": [[...], ...]} instead.
 * --tokens prints each text's token ids to stderr first.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "commands.h"
#include "model/bert.h"

static void embed_usage(FILE *f)
{
    fprintf(f, "usage: loft embed -m MODEL (-p TEXT | -f FILE) [--json] [--tokens]\n"
               "  -m FILE     a bert sentence-embedding model (all-MiniLM-L6-v2 GGUF)\n"
               "  -p TEXT     the text to embed\n"
               "  -f FILE     embed every non-empty line of FILE\n"
               "  --json      print JSON instead of one line of numbers per text\n"
               "  --tokens    print the token ids of each text to stderr\n"
               "  -t N        accepted; the encoder runs on one thread\n");
}

static int embed_one(bert_model *m, const char *text, size_t len, bool json, bool show_tokens,
                     bool first, float *vec)
{
    loft_status st;
    const bert_hparams *hp = bert_get_hparams(m);
    int32_t *toks = NULL;
    size_t n = 0;
    if (wordpiece_tokenize(bert_get_wordpiece(m), text, len, hp->n_ctx, &toks, &n, &st) ||
        bert_encode(m, toks, (int32_t)n, vec, NULL, &st)) {
        free(toks);
        fprintf(stderr, "loft embed: %s\n", st.msg);
        return 1;
    }
    if (show_tokens) {
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, "%s%d", i ? " " : "", toks[i]);
        fputc('\n', stderr);
    }
    free(toks);
    if (json) {
        printf("%s\n    [", first ? "" : ",");
        for (int32_t i = 0; i < hp->n_embd; i++) {
            if (i) putchar(',');
            printf("%.8g", (double)vec[i]);
        }
        putchar(']');
    } else {
        for (int32_t i = 0; i < hp->n_embd; i++)
            printf("%s%.6f", i ? " " : "", (double)vec[i]);
        putchar('\n');
    }
    return 0;
}

int cmd_embed(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL, *file = NULL;
    bool json = false, show_tokens = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            embed_usage(stdout);
            return 0;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has_val) {
            model = argv[++i];
        } else if ((!strcmp(a, "-p") || !strcmp(a, "--prompt")) && has_val) {
            prompt = argv[++i];
        } else if ((!strcmp(a, "-f") || !strcmp(a, "--file")) && has_val) {
            file = argv[++i];
        } else if ((!strcmp(a, "-t") || !strcmp(a, "--threads")) && has_val) {
            i++;
        } else if (!strcmp(a, "--json")) {
            json = true;
        } else if (!strcmp(a, "--tokens")) {
            show_tokens = true;
        } else {
            fprintf(stderr, "loft embed: unknown option or missing value: %s\n", a);
            return 2;
        }
    }
    if (!model || (!prompt == !file)) {
        fprintf(stderr, "loft embed: need -m MODEL and exactly one of -p TEXT or -f FILE\n");
        return 2;
    }
    char *text = NULL;
    size_t text_len = 0;
    if (file) {
        FILE *f = fopen(file, "rb");
        if (!f) {
            fprintf(stderr, "loft embed: %s: cannot open\n", file);
            return 1;
        }
        size_t cap = 0;
        for (;;) {
            if (text_len + 4096 + 1 > cap) {
                cap = cap ? cap * 2 : 65536;
                char *p = realloc(text, cap);
                if (!p) {
                    fclose(f);
                    free(text);
                    fprintf(stderr, "loft embed: %s: out of memory\n", file);
                    return 1;
                }
                text = p;
            }
            size_t got = fread(text + text_len, 1, 4096, f);
            text_len += got;
            if (got < 4096) break;
        }
        bool err = ferror(f);
        fclose(f);
        if (err) {
            free(text);
            fprintf(stderr, "loft embed: %s: read error\n", file);
            return 1;
        }
        text[text_len] = '\0';
    }
    loft_status st;
    bert_model *m = NULL;
    if (bert_load(&m, model, &st)) {
        fprintf(stderr, "loft embed: %s\n", st.msg);
        free(text);
        return 1;
    }
    const bert_hparams *hp = bert_get_hparams(m);
    float *vec = malloc((size_t)hp->n_embd * sizeof *vec);
    int rc = vec ? 0 : 1;
    if (json && !rc) {
        printf("{\"model\": ");
        json_write_str(stdout, model, strlen(model));
        printf(", \"n_embd\": %d, \"embeddings\": [", hp->n_embd);
    }
    if (rc) {
        fprintf(stderr, "loft embed: out of memory\n");
    } else if (prompt) {
        rc = embed_one(m, prompt, strlen(prompt), json, show_tokens, true, vec);
    } else {
        bool first = true;
        for (size_t pos = 0; pos < text_len && !rc;) {
            const char *nl = memchr(text + pos, '\n', text_len - pos);
            size_t end = nl ? (size_t)(nl - text) : text_len;
            size_t len = end - pos;
            if (len && text[pos + len - 1] == '\r') len--;
            if (len) {
                rc = embed_one(m, text + pos, len, json, show_tokens, first, vec);
                first = false;
            }
            pos = end + 1;
        }
    }
    if (json && vec) printf("\n]}\n");
    free(vec);
    free(text);
    bert_free(m);
    return rc;
}
