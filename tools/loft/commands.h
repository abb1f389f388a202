/*
 * commands.h - the subcommands of the loft program. Each takes the
 * arguments after its name (argv[0] is the subcommand name) and returns the
 * process exit status: 0 on success, 1 on a runtime failure, 2 on a usage
 * error. Errors are printed to stderr as one line "loft <cmd>: <message>".
 */
#ifndef LOFT_TOOL_COMMANDS_H
#define LOFT_TOOL_COMMANDS_H

int cmd_info(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_quantize(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_embed(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_judge(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
int cmd_suite(int argc, char **argv);
int cmd_merge(int argc, char **argv);

#endif
