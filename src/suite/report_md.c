/*
 * report_md.c - OUT/report.md, laid out like the published benchmark
 * document: test configuration with the exact commands, inference
 * performance, fine-tuning quality, accuracy, fine-tuning completion time,
 * key findings and the hardware specification.
 */
#include <stdlib.h>
#include <string.h>

#include "suite/suite_impl.h"

static const char *base_name(const char *p)
{
    const char *b = strrchr(p, '/');
    return b ? b + 1 : p;
}

void suite_write_commands(FILE *f, const suite_ctx *c, const char *pre, const char *post)
{
    const suite_opts *o = c->o;
    const suite_results *r = c->res;
    char src[SUITE_PATH_MAX];
    snprintf(src, sizeof src, "%s/%s", o->models_dir, o->default_model);
    fprintf(f, "%s%s%s", pre, o->command ? o->command : "loft suite", post);
    for (int i = 0; i < c->n_models; i++)
        if (c->models[i].made)
            fprintf(f, "%sloft quantize --allow-requantize %s %s %s%s", pre, src, c->models[i].path,
                    c->models[i].quant, post);
    char threads[64] = "";
    size_t n = 0;
    for (int t = 0; t < o->n_threads && n < sizeof threads; t++)
        n += (size_t)snprintf(threads + n, sizeof threads - n, "%s%d", t ? "," : "", o->threads[t]);
    fprintf(f,
            "%sloft run -m MODEL -c 2048 -s 42 --temp 0 --top-p 1.0 --top-k 0 -st -n %d -p \"%s\" "
            "--bench %d -t T   (T in %s)%s",
            pre, o->n_predict, o->prompt, o->prompt_runs, threads, post);
    fprintf(f, "%sloft bench -m MODEL -p %d -n %d -r %d -t %s --no-hash%s", pre, o->n_pp, o->n_tg,
            o->bench_reps, threads, post);
    if (!r->train_file[0]) return;
    fprintf(f,
            "%sloft finetune -m BASE -f %s --assistant-loss-only -c %d -b %d -ub %d "
            "--learning-rate %g --lr-min %g --lr-scheduler cosine --warmup-ratio 0.1 "
            "--num-epochs %d --lora-modules "
            "\"attn_q,attn_k,attn_v,attn_o,ffn_gate,ffn_up,ffn_down\" -t %d",
            pre, r->train_file, o->n_ctx, o->n_ctx, o->n_ctx, o->lr, o->lr_min, o->n_epochs,
            o->train_threads);
    if (o->max_steps > 0) fprintf(f, " --max-steps %lld", (long long)o->max_steps);
    if (o->full)
        fprintf(f, " --val-file %s --checkpoint-save-steps %lld", r->val_file,
                (long long)o->save_every);
    fputs(post, f);
    fprintf(f, "%sloft eval -m BASE -f %s --task qa --format qa -n %d", pre, r->val_file,
            o->eval_n_predict);
    if (o->eval_limit > 0) fprintf(f, " --limit %d", o->eval_limit);
    fprintf(f, " -t %d --embed-model %s [--lora ADAPTER]%s", o->train_threads,
            r->embed_file[0] ? r->embed_file : "none", post);
}

static void md_escape_cell(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|') fputc('\\', f);
        fputc(*s, f);
    }
}

static void write_grid(FILE *f, const suite_grid *g)
{
    if (!g->n_cols) return;
    fprintf(f, "| %s |", g->corner);
    for (int k = 0; k < g->n_cols; k++) {
        fputc(' ', f);
        md_escape_cell(f, g->head[k]);
        fputs(" |", f);
    }
    fputs("\n| --- |", f);
    for (int k = 0; k < g->n_cols; k++)
        fputs(" ---: |", f);
    fputc('\n', f);
    for (int i = 0; i < g->n_rows; i++) {
        fprintf(f, "| %s |", g->rowname[i]);
        for (int k = 0; k < g->n_cols; k++) {
            fputc(' ', f);
            md_escape_cell(f, g->cell[i][k]);
            fputs(" |", f);
        }
        fputc('\n', f);
    }
    if (g->note[0]) fprintf(f, "\n%s\n", g->note);
    fputc('\n', f);
}

void suite_write_config(FILE *f, const suite_ctx *c)
{
    const suite_opts *o = c->o;
    const suite_results *r = c->res;
    fprintf(f, "- Mode: **%s**%s\n", o->full ? "full" : "quick",
            o->full ? " (the published sizes)"
                    : " (smaller than the published run: see the sizes below; `--full` runs the "
                      "published ones)");
    fprintf(f, "- Default model: `%s`; quantization ladder:", o->default_model);
    for (int i = 0; i < c->n_models; i++)
        if (c->models[i].ladder)
            fprintf(f, " %s%s", c->models[i].quant, c->models[i].made ? " (made)" : " (the file)");
    fprintf(f, ". The other rungs are made from that file with the quantizer; when it is itself "
               "quantized (SmolLM2 is fetched as Q4_1 only) they are requantized: their speed and "
               "size are those of the format, their quality is bounded by the source's.\n");
    fprintf(f,
            "- Inference: the prompt \"%s\" in the chat template, greedy, up to %d tokens, %d "
            "timed runs after a warm-up; `loft bench` pp%d and tg%d with %d repetitions%s; "
            "threads:",
            o->prompt, o->n_predict, o->prompt_runs, o->n_pp, o->n_tg, o->bench_reps,
            o->full ? "" : " (the published run uses 5 runs, pp512 and tg128)");
    for (int t = 0; t < o->n_threads; t++)
        fprintf(f, " %d", o->threads[t]);
    fputs(".\n", f);
    if (r->train_file[0]) {
        fprintf(f,
                "- Fine-tuning: LoRA rank 8, alpha 16, all seven projections, `-c %d -b %d`, "
                "AdamW (weight decay 0.01, clip 1.0), cosine schedule from %g to %g with 10%% "
                "warm-up, %s, %d threads, on `%s`.\n",
                o->n_ctx, o->n_ctx, o->lr, o->lr_min,
                o->max_steps > 0 ? "a fixed number of optimizer steps (see the tables)"
                                 : "the published number of epochs",
                o->train_threads, r->train_file);
        if (o->max_steps > 0)
            fprintf(f,
                    "  Quick mode trains %lld steps at learning rate %g so that a short run "
                    "moves; the published run is 8 epochs at 1e-5 (`--full`).\n",
                    (long long)o->max_steps, o->lr);
        fprintf(f,
                "- Quality: greedy answers (\"Q: ...\\nA:\", up to %d tokens) to %s of the "
                "%lld validation records of `%s`; accuracy is the label (Yes / No / "
                "Uncertain) of the answer's first word; cosine%s and Jaccard similarity "
                "against the reference answer.\n",
                o->eval_n_predict,
                o->eval_limit > 0 && o->eval_limit < r->n_val_records ? "a subset" : "all",
                (long long)r->n_val_records, r->val_file,
                r->embed_file[0] ? " (all-MiniLM-L6-v2 embeddings)"
                                 : " (not measured: no "
                                   "embedding model)");
        if (o->eval_limit > 0 && o->eval_limit < r->n_val_records)
            fprintf(f,
                    "  Quick mode evaluates %d records, balanced across the labels (the split "
                    "is sorted by label; its records of each label are taken in file order, "
                    "round-robin); a record moves accuracy by %.1f points.\n",
                    o->eval_limit, 100.0 / o->eval_limit);
    }
    for (int s = 0; s < SUITE_N_STAGES; s++)
        if (r->skipped[s][0])
            fprintf(f, "- Skipped: %s (%s).\n", suite_stage_name((suite_stage)s), r->skipped[s]);
}

static void write_config(FILE *f, const suite_ctx *c)
{
    fprintf(f, "## Test configuration\n\n");
    suite_write_config(f, c);
    fprintf(f, "\nCommands (the suite runs the library functions behind these):\n\n```\n");
    suite_write_commands(f, c, "", "\n");
    fprintf(f, "```\n\n");
}

void suite_write_report_md(FILE *f, const suite_ctx *c)
{
    const suite_results *r = c->res;
    fprintf(f, "# loft benchmark report: %s\n\n", r->si.cpu_model);
    fprintf(f,
            "Generated by `loft suite` on %s (loft %s, commit %s). Every figure below is "
            "read from `results.json` in the same folder.\n\n",
            r->si.date, r->si.version, r->si.git_commit);
    write_config(f, c);

    fprintf(f, "## Inference performance\n\n");
    const char *names[SUITE_MAX_MODELS];
    int nm = suite_infer_models(r, names, SUITE_MAX_MODELS);
    suite_grid *g = calloc(1, sizeof *g);
    if (!g) return;
    for (int i = 0; i < nm; i++) {
        suite_grid_inference(c, names[i], g);
        fprintf(f, "### %s\n\n", g->title);
        write_grid(f, g);
    }
    for (size_t i = 0; i < r->n_rows; i++)
        if (r->rows[i].error[0])
            fprintf(f, "- failed: %s %s, %d threads: %s\n", base_name(r->rows[i].model_file),
                    r->rows[i].test, r->rows[i].n_threads, r->rows[i].error);
    fprintf(f, "\n## Fine-tuning quality\n\n");
    if (r->skipped[SUITE_TUNE][0]) fprintf(f, "Skipped: %s.\n\n", r->skipped[SUITE_TUNE]);
    suite_grid_tune(c, g);
    write_grid(f, g);
    for (int i = 0; i < r->n_tune; i++)
        if (r->tune[i].error[0])
            fprintf(f, "- %s failed: %s\n", r->tune[i].quant, r->tune[i].error);
    fprintf(f, "\n## Accuracy\n\n");
    if (r->skipped[SUITE_QUALITY][0]) fprintf(f, "Skipped: %s.\n\n", r->skipped[SUITE_QUALITY]);
    suite_grid_quality(c, g);
    write_grid(f, g);
    for (int i = 0; i < r->n_qual; i++)
        if (r->qual[i].error[0])
            fprintf(f, "- %s %s failed: %s\n", r->qual[i].quant,
                    r->qual[i].tuned ? "fine-tuned" : "untrained", r->qual[i].error);
    fprintf(f, "\n## Fine-tuning completion time\n\n");
    if (r->skipped[SUITE_TUNE][0]) fprintf(f, "Skipped: %s.\n\n", r->skipped[SUITE_TUNE]);
    suite_grid_time(c, g);
    write_grid(f, g);
    free(g);
    fprintf(f, "\n## Key findings\n\n");
    suite_findings(c, f, "- ", "\n");
    fprintf(f, "\n## Hardware specification\n\n");
    sysinfo_write_markdown(f, &r->si);
    fputc('\n', f);
}
