/* atomic_file.c - temporary file, fsync, rename. */
#include "base/atomic_file.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/status.h"

static void release(atomic_file *af)
{
    free(af->path);
    free(af->tmp);
    af->f = NULL;
    af->path = NULL;
    af->tmp = NULL;
}

bool atomic_tmp_is_stale(const char *name, const char *prefix)
{
    const size_t np = strlen(prefix);
    if (strncmp(name, prefix, np) != 0) return false;
    const char *p = name + np;
    long pid = 0;
    if (*p < '0' || *p > '9') return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (pid > 100000000L) return false;
        pid = pid * 10 + (*p - '0');
    }
    if (*p && strcmp(p, ".old") != 0) return false;
    if (pid <= 1 || pid == (long)getpid()) return false;
    return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Removes path's PATH.tmp.<pid> siblings whose writer is gone. Best effort:
 * a directory that cannot be read is left alone. */
static void sweep_stale_siblings(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096], prefix[512], victim[4096 + 512];
    const char *base = slash ? slash + 1 : path;
    if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if ((size_t)(slash - path) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        return;
    if (strlen(base) + 6 >= sizeof prefix) return;
    snprintf(prefix, sizeof prefix, "%s.tmp.", base);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (atomic_tmp_is_stale(e->d_name, prefix)) {
            snprintf(victim, sizeof victim, "%s/%s", dir, e->d_name);
            unlink(victim);
        }
    closedir(d);
}

loft_code atomic_file_open(atomic_file *af, const char *path, loft_status *st)
{
    memset(af, 0, sizeof *af);
    if (!path || !*path) return loft_fail(st, LOFT_ERR_ARG, "no output path given");
    size_t n = strlen(path);
    if (n > SIZE_MAX - 40) return loft_fail(st, LOFT_ERR_ARG, "output path too long");
    af->path = malloc(n + 1);
    af->tmp = malloc(n + 40);
    if (!af->path || !af->tmp) {
        release(af);
        return loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(af->path, path, n + 1);
    sweep_stale_siblings(path);
    snprintf(af->tmp, n + 40, "%s.tmp.%ld", path, (long)getpid());
    af->f = fopen(af->tmp, "wb");
    if (!af->f) {
        int e = errno;
        loft_code c = loft_fail(st, LOFT_ERR_IO, "%s: cannot create %s: %s", path, af->tmp,
                                strerror(e));
        release(af);
        return c;
    }
    return LOFT_OK;
}

loft_code atomic_sync_parent(const char *path, loft_status *st)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else if ((size_t)(slash - path) < sizeof dir)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else
        return loft_fail(st, LOFT_ERR_ARG, "%s: directory name too long", path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return loft_fail(st, LOFT_ERR_IO, "%s: cannot open %s: %s", path, dir, strerror(errno));
    /* Some file systems refuse fsync on a directory (EINVAL); the rename has
     * still happened, so that is not a failure of the write. */
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL && e != ENOTSUP)
        return loft_fail(st, LOFT_ERR_IO, "%s: cannot fsync %s: %s", path, dir, strerror(e));
    return LOFT_OK;
}

loft_code atomic_file_commit(atomic_file *af, loft_status *st)
{
    if (!af->f) {
        release(af);
        return loft_fail(st, LOFT_ERR_ARG, "atomic file: commit without open");
    }
    const char *step = NULL;
    int err = 0;
    /* An earlier failed fprintf/fwrite only left the stream's error flag;
     * flushing again what is still buffered usually fails the same way and
     * gives the reason (EFBIG, ENOSPC). Bytes were lost either way. */
    if (ferror(af->f)) {
        step = "write";
        clearerr(af->f);
        errno = 0;
        err = fflush(af->f) != 0 && errno ? errno : EIO;
    }
    if (!step && fflush(af->f) != 0) {
        step = "write";
        err = errno;
    }
    if (!step && fsync(fileno(af->f)) != 0) {
        step = "fsync";
        err = errno;
    }
    /* fclose can report a deferred write error (NFS, quotas), so it counts. */
    if (fclose(af->f) != 0 && !step) {
        step = "close";
        err = errno;
    }
    af->f = NULL;
    if (!step && rename(af->tmp, af->path) != 0) {
        step = "rename";
        err = errno;
    }
    loft_code c = LOFT_OK;
    if (step) {
        c = loft_fail(st, LOFT_ERR_IO, "%s: cannot %s %s: %s (the previous file, if any, is kept)",
                      af->path, step, af->tmp, strerror(err ? err : EIO));
        unlink(af->tmp);
    } else {
        c = atomic_sync_parent(af->path, st);
    }
    release(af);
    return c;
}

void atomic_file_abort(atomic_file *af)
{
    if (af->f) {
        fclose(af->f);
        unlink(af->tmp);
    }
    release(af);
}
