#include "bench/sysinfo.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "base/json.h"
#include "base/threadpool.h"

/* Baked in by the Makefile; defaults keep other build systems working. */
#ifndef LOFT_GIT_COMMIT
#define LOFT_GIT_COMMIT "unknown"
#endif
#ifndef LOFT_BUILD_CFLAGS
#define LOFT_BUILD_CFLAGS "unknown"
#endif

/* Copies src into dst[cap], truncating; dst is always terminated. */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* Trims leading/trailing blanks and a trailing newline in place. */
static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '"'))
        s[--n] = 0;
    return s;
}

/* The value of "key : value" lines of /proc/cpuinfo: the first model name and
 * the number of distinct (physical id, core id) pairs. */
static void read_cpuinfo(sysinfo *si)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[1024];
    long phys = 0;
    long seen[1024][2];
    int n_seen = 0;
    while (fgets(line, sizeof line, f)) {
        char *colon = strchr(line, ':');
        if (!colon) continue;
        *colon = 0;
        char *key = trim(line), *val = trim(colon + 1);
        if ((!strcmp(key, "model name") || !strcmp(key, "Model")) && !si->cpu_model[0])
            copy_str(si->cpu_model, sizeof si->cpu_model, val);
        else if (!strcmp(key, "physical id"))
            phys = strtol(val, NULL, 10);
        else if (!strcmp(key, "core id")) {
            long core = strtol(val, NULL, 10);
            bool dup = false;
            for (int i = 0; i < n_seen; i++)
                if (seen[i][0] == phys && seen[i][1] == core) dup = true;
            if (!dup && n_seen < 1024) {
                seen[n_seen][0] = phys;
                seen[n_seen][1] = core;
                n_seen++;
            }
        }
    }
    fclose(f);
    si->cores = n_seen;
}

static void read_isa(sysinfo *si)
{
    si->isa[0] = 0;
#if defined(__x86_64__) || defined(__i386__)
    /* __builtin_cpu_supports needs a literal argument, hence the list. */
    const char *have[16];
    int n = 0;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) have[n++] = "sse4.2";
    if (__builtin_cpu_supports("avx")) have[n++] = "avx";
    if (__builtin_cpu_supports("avx2")) have[n++] = "avx2";
    if (__builtin_cpu_supports("fma")) have[n++] = "fma";
    if (__builtin_cpu_supports("avx512f")) have[n++] = "avx512f";
    if (__builtin_cpu_supports("avx512bw")) have[n++] = "avx512bw";
    if (__builtin_cpu_supports("avx512vl")) have[n++] = "avx512vl";
    if (__builtin_cpu_supports("avx512dq")) have[n++] = "avx512dq";
    if (__builtin_cpu_supports("avx512vnni")) have[n++] = "avx512vnni";
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10
    /* clang 14 knows neither name in __builtin_cpu_supports. */
    if (__builtin_cpu_supports("f16c")) have[n++] = "f16c";
    if (__builtin_cpu_supports("avx512bf16")) have[n++] = "avx512bf16";
#endif
    size_t used = 0;
    for (int i = 0; i < n; i++)
        used +=
            (size_t)snprintf(si->isa + used, sizeof si->isa - used, "%s%s", i ? " " : "", have[i]);
#elif defined(__aarch64__)
    copy_str(si->isa, sizeof si->isa, "neon");
#endif
    if (!si->isa[0]) copy_str(si->isa, sizeof si->isa, "none");
}

static void read_os(sysinfo *si)
{
    copy_str(si->os, sizeof si->os, "unknown");
    FILE *f = fopen("/etc/os-release", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "PRETTY_NAME=", 12)) {
            char *v = trim(line + 12);
            if (*v == '"') v++;
            copy_str(si->os, sizeof si->os, v);
            break;
        }
    fclose(f);
}

uint64_t sysinfo_available_ram(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return 0;
    char line[256];
    uint64_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "MemAvailable:", 13)) {
            kb = strtoull(line + 13, NULL, 10);
            break;
        }
    fclose(f);
    return kb * 1024;
}

uint64_t sysinfo_peak_rss(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (uint64_t)ru.ru_maxrss * 1024; /* Linux reports kilobytes */
}

void sysinfo_collect(sysinfo *si)
{
    memset(si, 0, sizeof *si);
    read_cpuinfo(si);
    read_isa(si);
    read_os(si);
    struct utsname u;
    if (uname(&u) == 0) {
        snprintf(si->kernel, sizeof si->kernel, "%.40s %.80s", u.sysname, u.release);
        copy_str(si->arch, sizeof si->arch, u.machine);
        copy_str(si->hostname, sizeof si->hostname, u.nodename);
    } else {
        copy_str(si->kernel, sizeof si->kernel, "unknown");
        copy_str(si->arch, sizeof si->arch, "unknown");
        copy_str(si->hostname, sizeof si->hostname, "unknown");
    }
    if (!si->cpu_model[0]) copy_str(si->cpu_model, sizeof si->cpu_model, si->arch);
    copy_str(si->isa_used, sizeof si->isa_used, "unknown");
    si->threads = threadpool_cpu_count();
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    si->ram_total = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    si->ram_available = sysinfo_available_ram();
#if defined(__clang__)
    snprintf(si->compiler, sizeof si->compiler, "clang %s", __clang_version__);
#elif defined(__GNUC__)
    snprintf(si->compiler, sizeof si->compiler, "gcc %s", __VERSION__);
#else
    copy_str(si->compiler, sizeof si->compiler, "unknown");
#endif
    copy_str(si->cflags, sizeof si->cflags, LOFT_BUILD_CFLAGS);
    copy_str(si->version, sizeof si->version, LOFT_VERSION);
    copy_str(si->git_commit, sizeof si->git_commit, LOFT_GIT_COMMIT);
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm)) strftime(si->date, sizeof si->date, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void json_field(FILE *f, const char *key, const char *val, bool comma)
{
    fprintf(f, "%s", comma ? ", " : "");
    json_write_str(f, key, strlen(key));
    fputs(": ", f);
    json_write_str(f, val, strlen(val));
}

void sysinfo_write_json(FILE *f, const sysinfo *si)
{
    fputc('{', f);
    json_field(f, "cpu_model", si->cpu_model, false);
    json_field(f, "arch", si->arch, true);
    json_field(f, "isa", si->isa, true);
    json_field(f, "isa_used", si->isa_used, true);
    fprintf(f, ", \"cores\": %d, \"threads\": %d", si->cores, si->threads);
    fprintf(f, ", \"ram_total\": %llu, \"ram_available\": %llu", (unsigned long long)si->ram_total,
            (unsigned long long)si->ram_available);
    json_field(f, "os", si->os, true);
    json_field(f, "kernel", si->kernel, true);
    json_field(f, "hostname", si->hostname, true);
    json_field(f, "compiler", si->compiler, true);
    json_field(f, "cflags", si->cflags, true);
    json_field(f, "loft_version", si->version, true);
    json_field(f, "git_commit", si->git_commit, true);
    json_field(f, "date", si->date, true);
    fputc('}', f);
}

void sysinfo_write_markdown(FILE *f, const sysinfo *si)
{
    fprintf(f, "- CPU: %s (%s; %d cores, %d threads)\n", si->cpu_model, si->arch, si->cores,
            si->threads);
    fprintf(f, "- ISA available: %s; used: %s\n", si->isa, si->isa_used);
    fprintf(f, "- RAM: %.1f GiB total, %.1f GiB available\n",
            (double)si->ram_total / (1024.0 * 1024.0 * 1024.0),
            (double)si->ram_available / (1024.0 * 1024.0 * 1024.0));
    fprintf(f, "- OS: %s, %s (host %s)\n", si->os, si->kernel, si->hostname);
    fprintf(f, "- Build: loft %s, commit %s, %s, flags `%s`\n", si->version, si->git_commit,
            si->compiler, si->cflags);
    fprintf(f, "- Date: %s\n", si->date);
}
