/* main.c - the loft program: dispatches to one subcommand per cmd_*.c. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "loft.h"

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"info", cmd_info, "print a GGUF model's architecture, hyperparameters and tensors"},
    {"run", cmd_run, "generate text from a prompt (raw, or one chat turn with -st)"},
    {"chat", cmd_chat, "interactive chat with the model's chat template"},
    {"perplexity", cmd_perplexity, "perplexity of a model over a text file (llama.cpp's method)"},
    {"quantize", cmd_quantize, "rewrite a model with another tensor type or K-quant mix"},
    {"bench", cmd_bench, "measure prompt and generation speed (llama-bench's options)"},
    {"report", cmd_report, "merge bench result files into markdown tables and an HTML page"},
    {"embed", cmd_embed, "sentence embeddings from a bert encoder (all-MiniLM-L6-v2)"},
    {"eval", cmd_eval, "score a model on a JSONL test set (qa, choice, perplexity)"},
    {"judge", cmd_judge, "compare two answer sets with a judge model, both orders"},
    {"finetune", cmd_finetune, "train a LoRA adapter on a GGUF model from a JSONL file"},
    {"suite", cmd_suite, "the whole benchmark (inference, fine-tuning, quality) with a report"},
    {"merge", cmd_merge, "fold LoRA adapters into a model's weights (writes a new GGUF)"},
};

static void print_usage(FILE *out)
{
    fprintf(out, "loft %s - LLM inference, LoRA fine-tuning, benchmarks and evaluation for GGUF "
                 "models\n\nusage: loft <command> [options]\n\ncommands:\n",
            LOFT_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'loft <command> --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
        print_usage(stdout);
        return 0;
    }
    if (!strcmp(name, "--version") || !strcmp(name, "version")) {
        printf("loft %s\n", LOFT_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(name, commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "loft: unknown command '%s' (run 'loft --help' for the list)\n", name);
    return 2;
}
