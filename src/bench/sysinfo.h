/*
 * sysinfo.h - the machine and build record that goes with every benchmark
 * result, so two result files from different machines can be compared from
 * the files alone.
 */
#ifndef LOFT_BENCH_SYSINFO_H
#define LOFT_BENCH_SYSINFO_H

#include <stdint.h>
#include <stdio.h>

#include "loft.h"

typedef struct sysinfo {
    char cpu_model[128];    /* "Intel(R) Xeon(R) ..." from /proc/cpuinfo, or the arch */
    char arch[32];          /* uname machine: "x86_64", "aarch64" */
    char isa[256];          /* instruction-set extensions the CPU has, space-separated */
    char isa_used[64];      /* the kernel path loft runs (filled by the caller) */
    int cores;              /* physical cores (0 when unknown) */
    int threads;            /* online logical processors */
    uint64_t ram_total;     /* bytes */
    uint64_t ram_available; /* bytes, MemAvailable at the time of the call */
    char os[128];           /* PRETTY_NAME from /etc/os-release */
    char kernel[128];       /* "Linux 6.1.0-..." */
    char hostname[64];
    char compiler[128];  /* "gcc 12.2.0" */
    char cflags[512];    /* the flags loft was compiled with */
    char version[32];    /* LOFT_VERSION */
    char git_commit[48]; /* commit the build came from, "-dirty" when modified */
    char date[32];       /* ISO 8601 UTC time of the call */
} sysinfo;

/* Fills *si from /proc, uname, cpuid and the build-time constants. Fields
 * that cannot be read are "unknown" / 0; never fails. */
void sysinfo_collect(sysinfo *si);

/* Bytes of RAM available now (MemAvailable), 0 when unknown. */
uint64_t sysinfo_available_ram(void);

/* Peak resident set size of this process so far, in bytes. */
uint64_t sysinfo_peak_rss(void);

/* Writes si as a JSON object (no trailing newline). */
void sysinfo_write_json(FILE *f, const sysinfo *si);

/* Writes si as a markdown bullet list. */
void sysinfo_write_markdown(FILE *f, const sysinfo *si);

#endif
