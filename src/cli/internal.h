/* cli's own declarations, shared by cli.c (the command line) and
 * config.c (the configuration file, whose keys are the long options). */
#ifndef SGBLK_CLI_INTERNAL_H
#define SGBLK_CLI_INTERNAL_H

#include <getopt.h>

extern const char cli_short_opts[];
extern const struct option cli_long_opts[];

#endif
