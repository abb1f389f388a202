/* cmd_finetune.c - `loft finetune`: train a LoRA adapter on a GGUF model. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/memfit.h"
#include "commands.h"
#include "session.h"
#include "model/model.h"
#include "text/chat.h"
#include "text/vocab.h"
#include "train/dataset.h"
#include "train/lora.h"
#include "train/train.h"
#include "train/trainer.h"

static volatile sig_atomic_t stop_requested = 0;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *f)
{
    fputs("usage: loft finetune -m MODEL.gguf -f TRAIN.jsonl [options]\n"
          "  -c N                    tokens per sequence (longer examples are truncated) [128]\n"
          "  -b N                    tokens per optimizer step, from several sequences [= -c]\n"
          "  -ub N                   with --pack, most tokens per forward/backward, 1..-b\n"
          "                          [min(-b, 512)]\n"
          "  --pack                  run several examples of a step in one forward/backward\n"
          "                          (up to -ub tokens; each sees only itself) [off: one each]\n"
          "  -t N                    threads [all cores]\n"
          "  --assistant-loss-only   loss on completion / assistant tokens only\n"
          "  --chat-template NAME    override the model's template for \"messages\" lines\n"
          "  --strict                a bad JSONL line is fatal (default: reported, skipped)\n"
          "  --lora-modules LIST     "
          "attn_q,attn_k,attn_v,attn_o,ffn_gate,ffn_up,ffn_down,output,all\n"
          "                          [attn_q,attn_k,attn_v,attn_o]\n"
          "  --lora-rank N [8]  --lora-alpha F [16]  --lora-seed N [42]\n"
          "  --lora-dropout P        dropout on the LoRA path's input, 0 <= P < 1 [0]\n"
          "  --checkpoint-activations  keep block inputs only, recompute in the backward\n"
          "                          (less memory, about one more forward per sequence)\n"
          "  --learning-rate F [1e-4]  --lr-min F [0]  --lr-scheduler constant|linear|cosine\n"
          "  --warmup-ratio F [0]  --warmup-steps N  --num-epochs N [1]  --max-steps N\n"
          "  --weight-decay F [0.01]  --adam-beta1 F [0.9]  --adam-beta2 F [0.999]\n"
          "  --adam-eps F [1e-8]  --grad-clip F [1.0; 0 = off]\n"
          "  --val-split F | --val-file FILE  --eval-steps N\n"
          "  --shuffle | --no-shuffle [shuffle]  --seed N [42]\n"
          "  --output-adapter FILE [trained-lora-adapter.gguf]\n"
          "  --checkpoint-save-steps N  --checkpoint-save-dir DIR [./lora_checkpoints]\n"
          "  --resume-from DIR  --auto-resume  --lora ADAPTER.gguf (continue training it)\n"
          "  --deterministic         results independent of threads (always true in loft)\n"
          "  --exact-matmul          dequantize weight rows to F32 for every product\n"
          "  --mem-limit SIZE        refuse a run whose estimate needs more (512M, 8G) [RAM available]\n"
          "  -ngl N, -fa X           accepted, not used (CPU)\n",
          f);
}

static int bad(const char *msg, const char *arg)
{
    fprintf(stderr, "loft finetune: %s%s%s\n", msg, arg ? " " : "", arg ? arg : "");
    return 2;
}

static bool parse_d(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(v)) return false;
    *out = v;
    return true;
}

static bool parse_i(const char *s, long long lo, long long hi, long long *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || errno || v < lo || v > hi) return false;
    *out = v;
    return true;
}

typedef struct progress {
    bool tty;
} progress;

static void report(void *ud, const train_report *r)
{
    progress *p = ud;
    if (r->is_eval) {
        printf("%sepoch %d/%d step %lld: validation loss %.4f\n", p->tty ? "\n" : "", r->epoch,
               r->n_epochs, (long long)r->step, r->val_loss);
    } else {
        printf("%sepoch %d/%d step %lld/%lld loss %.4f lr %.3g grad-norm %.3f tok/s %.1f ETA "
               "%.0fs (%d seqs, %d tokens, %d passes)%s",
               p->tty ? "\r\033[K" : "", r->epoch, r->n_epochs, (long long)r->step,
               (long long)r->total_steps, r->loss, r->lr, r->grad_norm, r->tokens_per_s, r->eta_s,
               r->n_seqs, r->n_tokens, r->n_ubatches, p->tty ? "" : "\n");
    }
    fflush(stdout);
}

int cmd_finetune(int argc, char **argv)
{
    const char *model_path = NULL, *data_path = NULL, *val_path = NULL, *tmpl_name = NULL;
    const char *modules = "attn_q,attn_k,attn_v,attn_o";
    double val_split = 0.0, dropout = 0.0;
    bool ckpt_act = false;
    bool loss_only = false, strict = false;
    uint64_t mem_limit = 0; /* --mem-limit; 0 = the RAM available */
    train_opts o = {.n_ctx = 128,
                    .n_batch = -1,
                    .n_threads = 0,
                    .rank = 8,
                    .alpha = 16.0f,
                    .lora_seed = 42,
                    .seed = 42,
                    .lr = 1e-4,
                    .lr_min = 0.0,
                    .sched = LR_CONSTANT,
                    .warmup_steps = -1,
                    .n_epochs = 1,
                    .weight_decay = 0.01f,
                    .beta1 = 0.9f,
                    .beta2 = 0.999f,
                    .eps = 1e-8f,
                    .grad_clip = 1.0,
                    .shuffle = true,
                    .ckpt_dir = "./lora_checkpoints",
                    .output_adapter = "trained-lora-adapter.gguf"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d;
        long long n;
#define NEED()                                                                                     \
    do {                                                                                           \
        if (!v) return bad("missing value after", a);                                              \
        i++;                                                                                       \
    } while (0)
#define INT_OPT(lo, hi, dst)                                                                       \
    do {                                                                                           \
        NEED();                                                                                    \
        if (!parse_i(v, lo, hi, &n)) return bad("bad integer for", a);                             \
        dst = n;                                                                                   \
    } while (0)
#define DBL_OPT(dst)                                                                               \
    do {                                                                                           \
        NEED();                                                                                    \
        if (!parse_d(v, &d)) return bad("bad number for", a);                                      \
        dst = d;                                                                                   \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            NEED();
            model_path = v;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file") || !strcmp(a, "--train-data")) {
            NEED();
            data_path = v;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size"))
            INT_OPT(2, 1 << 20, o.n_ctx);
        else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size"))
            INT_OPT(1, 1 << 24, o.n_batch);
        else if (!strcmp(a, "-ub") || !strcmp(a, "--ubatch-size")) {
            NEED();
            if (!parse_i(v, 1, 1 << 24, &n))
                return bad("-ub takes a number of tokens from 1 to -b, not", v);
            o.n_ubatch = (int32_t)n;
        } else if (!strcmp(a, "--pack"))
            o.pack = true;
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads"))
            INT_OPT(1, 256, o.n_threads);
        else if (!strcmp(a, "-ngl") || !strcmp(a, "--n-gpu-layers") || !strcmp(a, "-fa") ||
                 !strcmp(a, "--flash-attn")) {
            NEED();
            fprintf(stderr, "loft finetune: %s %s ignored (CPU only)\n", a, v);
        } else if (!strcmp(a, "--assistant-loss-only"))
            loss_only = true;
        else if (!strcmp(a, "--strict"))
            strict = true;
        else if (!strcmp(a, "--chat-template")) {
            NEED();
            tmpl_name = v;
        } else if (!strcmp(a, "--lora-modules")) {
            NEED();
            modules = v;
        } else if (!strcmp(a, "--lora-rank"))
            INT_OPT(1, 4096, o.rank);
        else if (!strcmp(a, "--lora-alpha"))
            DBL_OPT(o.alpha);
        else if (!strcmp(a, "--lora-dropout"))
            DBL_OPT(dropout);
        else if (!strcmp(a, "--lora-seed"))
            INT_OPT(0, INT64_MAX, o.lora_seed);
        else if (!strcmp(a, "--seed"))
            INT_OPT(0, INT64_MAX, o.seed);
        else if (!strcmp(a, "--learning-rate") || !strcmp(a, "-lr"))
            DBL_OPT(o.lr);
        else if (!strcmp(a, "--lr-min"))
            DBL_OPT(o.lr_min);
        else if (!strcmp(a, "--lr-scheduler")) {
            NEED();
            if (!strcmp(v, "constant"))
                o.sched = LR_CONSTANT;
            else if (!strcmp(v, "linear"))
                o.sched = LR_LINEAR;
            else if (!strcmp(v, "cosine"))
                o.sched = LR_COSINE;
            else
                return bad("--lr-scheduler takes constant, linear or cosine, not", v);
        } else if (!strcmp(a, "--warmup-ratio"))
            DBL_OPT(o.warmup_ratio);
        else if (!strcmp(a, "--warmup-steps"))
            INT_OPT(0, INT64_MAX, o.warmup_steps);
        else if (!strcmp(a, "--num-epochs") || !strcmp(a, "--epochs"))
            INT_OPT(1, 1000000, o.n_epochs);
        else if (!strcmp(a, "--max-steps"))
            INT_OPT(0, INT64_MAX, o.max_steps);
        else if (!strcmp(a, "--weight-decay"))
            DBL_OPT(o.weight_decay);
        else if (!strcmp(a, "--adam-beta1"))
            DBL_OPT(o.beta1);
        else if (!strcmp(a, "--adam-beta2"))
            DBL_OPT(o.beta2);
        else if (!strcmp(a, "--adam-eps"))
            DBL_OPT(o.eps);
        else if (!strcmp(a, "--grad-clip"))
            DBL_OPT(o.grad_clip);
        else if (!strcmp(a, "--val-split"))
            DBL_OPT(val_split);
        else if (!strcmp(a, "--val-file")) {
            NEED();
            val_path = v;
        } else if (!strcmp(a, "--eval-steps"))
            INT_OPT(0, INT64_MAX, o.eval_steps);
        else if (!strcmp(a, "--shuffle"))
            o.shuffle = true;
        else if (!strcmp(a, "--no-shuffle"))
            o.shuffle = false;
        else if (!strcmp(a, "--output-adapter") || !strcmp(a, "-o")) {
            NEED();
            o.output_adapter = v;
        } else if (!strcmp(a, "--checkpoint-save-steps"))
            INT_OPT(0, INT64_MAX, o.save_every);
        else if (!strcmp(a, "--checkpoint-save-dir")) {
            NEED();
            o.ckpt_dir = v;
        } else if (!strcmp(a, "--resume-from")) {
            NEED();
            o.resume_from = v;
        } else if (!strcmp(a, "--auto-resume"))
            o.auto_resume = true;
        else if (!strcmp(a, "--lora")) {
            NEED();
            o.init_adapter = v;
        } else if (!strcmp(a, "--deterministic")) { /* always so: see train.h */
        } else if (!strcmp(a, "--mem-limit")) {
            NEED();
            if (!memfit_parse_size(v, &mem_limit) || mem_limit == 0)
                return bad("--mem-limit expects a size such as 512M or 8G, not", v);
        } else if (!strcmp(a, "--exact-matmul"))
            o.exact_matmul = true;
        else if (!strcmp(a, "--checkpoint-activations"))
            ckpt_act = true;
        else
            return bad("unknown option", a);
#undef NEED
#undef INT_OPT
#undef DBL_OPT
    }
    if (!model_path || !data_path) return bad("needs -m MODEL.gguf and -f TRAIN.jsonl", NULL);
    /* checked as the float the trainer gets: 0.99999999 rounds to 1 */
    if (!(dropout >= 0.0 && (float)dropout < 1.0f))
        return bad("--lora-dropout must be in [0, 1)", NULL);
    o.lora_dropout = (float)dropout;
    o.checkpoint_activations = ckpt_act;
    if (val_split < 0.0 || val_split >= 1.0) return bad("--val-split must be in [0, 1)", NULL);
    if (o.n_batch < 0) o.n_batch = o.n_ctx;
    loft_status st;
    const int32_t ub = train_ubatch(&o, &st);
    if (ub < 0) return bad(st.msg, NULL);
    if (o.n_threads <= 0) {
        long nc = sysconf(_SC_NPROCESSORS_ONLN);
        o.n_threads = nc > 0 ? (int)nc : 1;
    }
    if (lora_parse_modules(modules, &o.modules, &st) != LOFT_OK) return bad(st.msg, NULL);

    loft_model *m = NULL;
    loft_vocab *voc = NULL;
    train_dataset train = {0}, val = {0};
    int rc = 1;
    /* From here on SIGINT/SIGTERM ask for a stop: the run finishes its step,
     * writes a checkpoint and exits 0 (also when the signal came during
     * loading). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (model_load(&m, model_path, &st) != LOFT_OK) goto fail;
    memfit_train_config tc = {o.n_ctx, o.rank, o.modules, o.n_threads, o.pack ? ub : 0,
                              o.checkpoint_activations};
    if (session_check_train_fit("finetune", model_gguf(m), &tc, mem_limit)) {
        rc = 1;
        goto done;
    }
    if (vocab_load(&voc, model_gguf(m), &st) != LOFT_OK) goto fail;
    loft_chat_template tmpl;
    if (tmpl_name) {
        if (loft_chat_template_by_name(&tmpl, tmpl_name, &st) != LOFT_OK) goto fail;
    } else {
        gguf_str text = {0, NULL};
        gguf_get_str(model_gguf(m), "tokenizer.chat_template", &text);
        if (loft_chat_template_detect(&tmpl, text.data, (size_t)text.len,
                                      model_get_hparams(m)->arch_name, &st) != LOFT_OK)
            goto fail;
    }
    dataset_opts dop = {.n_ctx = o.n_ctx, .assistant_loss_only = loss_only, .strict = strict};
    if (dataset_load(&train, data_path, voc, &tmpl, &dop, &st) != LOFT_OK) goto fail;
    for (size_t i = 0; i < train.n_bad; i++)
        fprintf(stderr, "loft finetune: %s:%zu: skipped: %s\n", data_path, train.bad[i].line,
                train.bad[i].why);
    if (val_path) {
        if (dataset_load(&val, val_path, voc, &tmpl, &dop, &st) != LOFT_OK) goto fail;
    } else if (val_split > 0.0) {
        size_t nv = (size_t)floor(val_split * (double)train.n + 0.5);
        if (nv == 0) nv = 1;
        if (dataset_split_tail(&train, &val, nv, &st) != LOFT_OK) goto fail;
    }
    fprintf(stderr,
            "loft finetune: %zu training examples (%lld tokens, %lld trained), %zu truncated to "
            "%d tokens, %zu skipped lines, %zu without trained tokens; %zu validation examples\n",
            train.n, (long long)train.n_tokens, (long long)train.n_loss_tokens, train.n_truncated,
            o.n_ctx, train.n_bad, train.n_no_loss, val.n);
    trainer_config tcfg = {.max_tokens = o.n_ctx,
                           .n_threads = o.n_threads,
                           .exact_matmul = o.exact_matmul,
                           .checkpoint_activations = ckpt_act};
    fprintf(stderr, "loft finetune: activation memory %.1f MiB (%s); LoRA dropout %g\n",
            (double)trainer_activation_bytes_for(m, o.rank, o.modules, &tcfg) / 1048576.0,
            ckpt_act ? "checkpointed: block inputs kept, the rest recomputed"
                     : "every block's activations kept",
            dropout);

    o.stop = &stop_requested;
    progress pr = {.tty = isatty(STDOUT_FILENO) != 0};
    o.report = report;
    o.report_ud = &pr;
    train_result res;
    if (train_run(m, &train, val.n ? &val : NULL, &o, &res, &st) != LOFT_OK) goto fail;
    if (pr.tty) printf("\n");
    if (res.resumed)
        fprintf(stderr, "loft finetune: resumed from step %lld\n", (long long)res.resumed_step);
    if (res.stopped)
        printf("stopped at step %lld; checkpoint written to %s\n", (long long)res.steps,
               o.ckpt_dir);
    else
        printf("trained %lld steps; final loss %.4f; adapter written to %s\n", (long long)res.steps,
               res.last_loss, o.output_adapter);
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "loft finetune: %s\n", st.msg);
done:
    dataset_free(&train);
    dataset_free(&val);
    vocab_free(voc);
    model_free(m);
    return rc;
}
