/* checkpoint.c - training state directories, written atomically. */
#include "train/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/atomic_file.h"
#include "base/status.h"
#include "gguf/gguf.h"
#include "quant/quant.h"
#include "train/adapter.h"
#include "train/train.h"

#define CKPT_PREFIX "checkpoint_step_"

/* Removes dir and the plain files in it (our own temporaries only). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[4096];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
                unlink(p);
            }
        closedir(d);
    }
    rmdir(dir);
}

/* Removes the temporary checkpoint directories (.tmp-checkpoint_step_N.<pid>
 * and their .old) of runs that were killed mid-save. */
static void sweep_stale_tmp_dirs(const char *parent)
{
    DIR *d = opendir(parent);
    if (!d) return;
    const char *head = ".tmp-" CKPT_PREFIX;
    const size_t hl = strlen(head);
    struct dirent *e;
    char prefix[256], p[4096 + 256];
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, head, hl) != 0) continue;
        const char *q = e->d_name + hl;
        while (*q >= '0' && *q <= '9')
            q++;
        if (*q != '.' || (size_t)(q + 1 - e->d_name) >= sizeof prefix) continue;
        snprintf(prefix, sizeof prefix, "%.*s", (int)(q + 1 - e->d_name), e->d_name);
        if (!atomic_tmp_is_stale(e->d_name, prefix)) continue;
        snprintf(p, sizeof p, "%s/%s", parent, e->d_name);
        remove_dir(p);
    }
    closedir(d);
}

static loft_code write_state(const char *path, const adamw *o, const train_state *ts,
                             const int32_t *order, size_t n_order, loft_status *st)
{
    gguf_writer *w = gguf_writer_init(0);
    if (!w) return loft_fail(st, LOFT_ERR_NOMEM, "%s: out of memory", path);
    const int64_t ne[1] = {(int64_t)o->n};
    loft_code c = gguf_writer_set_str(w, "general.type", "loft.train_state");
    if (!c) c = gguf_writer_set_int(w, "train.step", GGUF_TYPE_INT64, ts->step);
    if (!c) c = gguf_writer_set_int(w, "train.epoch", GGUF_TYPE_INT32, ts->epoch);
    if (!c) c = gguf_writer_set_int(w, "train.pos", GGUF_TYPE_INT64, ts->pos);
    if (!c) c = gguf_writer_set_uint(w, "train.seed", GGUF_TYPE_UINT64, ts->seed);
    if (!c) c = gguf_writer_set_uint(w, "train.n_examples", GGUF_TYPE_UINT64, ts->n_examples);
    if (!c) c = gguf_writer_set_int(w, "adamw.t", GGUF_TYPE_INT64, o->t);
    if (!c && n_order) c = gguf_writer_set_array(w, "train.order", GGUF_TYPE_INT32, order, n_order);
    if (!c && o->n)
        c = gguf_writer_add_tensor(w, "adamw.m", LOFT_TYPE_F32, 1, ne, o->m, o->n * sizeof(float));
    if (!c && o->n)
        c = gguf_writer_add_tensor(w, "adamw.v", LOFT_TYPE_F32, 1, ne, o->v, o->n * sizeof(float));
    if (c) {
        gguf_writer_free(w);
        return loft_fail(st, c, "%s: cannot build the training state", path);
    }
    c = gguf_writer_write(w, path, st);
    gguf_writer_free(w);
    return c;
}

loft_code checkpoint_save(const char *parent, const lora_set *s, const adamw *o,
                          const train_state *ts, const int32_t *order, size_t n_order,
                          const char *arch, loft_status *st)
{
    char final[4096], tmp[4096], file[4200];
    if (mkdir(parent, 0777) != 0 && errno != EEXIST)
        return loft_fail(st, LOFT_ERR_IO, "%s: cannot create: %s", parent, strerror(errno));
    snprintf(final, sizeof final, "%s/" CKPT_PREFIX "%08lld", parent, (long long)ts->step);
    snprintf(tmp, sizeof tmp, "%s/.tmp-" CKPT_PREFIX "%08lld.%ld", parent, (long long)ts->step,
             (long)getpid());
    remove_dir(tmp);
    sweep_stale_tmp_dirs(parent);
    if (mkdir(tmp, 0777) != 0)
        return loft_fail(st, LOFT_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    snprintf(file, sizeof file, "%s/adapter.gguf", tmp);
    loft_code c = adapter_save(s, arch, file, st);
    if (c == LOFT_OK) {
        snprintf(file, sizeof file, "%s/state.gguf", tmp);
        c = write_state(file, o, ts, order, n_order, st);
    }
    if (c != LOFT_OK) {
        remove_dir(tmp);
        /* Say what the failure means for the run; st->msg is copied first
         * because loft_fail writes into it. */
        char why[sizeof st->msg];
        snprintf(why, sizeof why, "%s", st ? st->msg : "");
        return loft_fail(st, c, "checkpoint of step %lld not saved (earlier checkpoints in %s are "
                         "kept): %s", (long long)ts->step, parent, why);
    }
    /* A directory of the same step (a rerun after a resume) is moved aside,
     * not removed first, so some complete copy exists at every moment. */
    char old[4200];
    snprintf(old, sizeof old, "%s.old", tmp);
    remove_dir(old);
    bool had_final = rename(final, old) == 0;
    if (rename(tmp, final) != 0) {
        c = loft_fail(st, LOFT_ERR_IO, "%s: cannot rename to %s: %s", tmp, final, strerror(errno));
        if (had_final) rename(old, final);
        remove_dir(tmp);
        return c;
    }
    if (had_final) remove_dir(old);
    return atomic_sync_parent(final, st);
}

loft_code checkpoint_load(const char *dir, lora_set *s, adamw *o, train_state *ts,
                          const lora_dims *dims, const char *arch, loft_status *st)
{
    char file[4200];
    snprintf(file, sizeof file, "%s/adapter.gguf", dir);
    lora_set saved;
    loft_code c = adapter_load(&saved, file, dims, arch, st);
    if (c != LOFT_OK) return c;
    if (saved.kinds != s->kinds || saved.n_params != s->n_params) {
        lora_set_free(&saved);
        return loft_fail(st, LOFT_ERR_FORMAT,
                         "%s: the checkpoint's modules or rank differ from this run's", file);
    }
    c = adapter_copy_into(s, &saved, file, st);
    lora_set_free(&saved);
    if (c != LOFT_OK) return c;

    snprintf(file, sizeof file, "%s/state.gguf", dir);
    gguf_file *g = NULL;
    c = gguf_open(&g, file, st);
    if (c != LOFT_OK) return c;
    int64_t step, epoch, pos, t;
    uint64_t seed, nex;
    const gguf_tensor_info *tm = gguf_find_tensor(g, "adamw.m");
    const gguf_tensor_info *tv = gguf_find_tensor(g, "adamw.v");
    if (!gguf_get_int(g, "train.step", &step) || !gguf_get_int(g, "train.epoch", &epoch) ||
        !gguf_get_int(g, "train.pos", &pos) || !gguf_get_uint(g, "train.seed", &seed) ||
        !gguf_get_uint(g, "train.n_examples", &nex) || !gguf_get_int(g, "adamw.t", &t) || !tm ||
        !tv || tm->type != LOFT_TYPE_F32 || tv->type != LOFT_TYPE_F32 ||
        tm->nbytes != o->n * sizeof(float) || tv->nbytes != o->n * sizeof(float) || step < 0 ||
        epoch < 0 || epoch > INT32_MAX || pos < 0 || t < 0) {
        gguf_close(g);
        return loft_fail(
            st, LOFT_ERR_FORMAT,
            "%s: missing or malformed train.* / adamw.* entries (expected %zu moments)", file,
            o->n);
    }
    memcpy(o->m, tm->data, o->n * sizeof(float));
    memcpy(o->v, tv->data, o->n * sizeof(float));
    o->t = t;
    ts->step = step;
    ts->epoch = (int32_t)epoch;
    ts->pos = pos;
    ts->seed = seed;
    ts->n_examples = nex;
    gguf_close(g);
    return LOFT_OK;
}

loft_code train_find_checkpoint(const char *dir, char **out, loft_status *st)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return LOFT_OK;
        return loft_fail(st, LOFT_ERR_IO, "%s: %s", dir, strerror(errno));
    }
    long long best = -1;
    struct dirent *e;
    const size_t pl = strlen(CKPT_PREFIX);
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, CKPT_PREFIX, pl)) continue;
        char *end = NULL;
        long long n = strtoll(e->d_name + pl, &end, 10);
        if (end == e->d_name + pl || *end || n < 0) continue;
        /* complete = both files present (the rename makes them appear together) */
        char p[4200];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s/state.gguf", dir, e->d_name);
        if (stat(p, &sb) != 0) continue;
        snprintf(p, sizeof p, "%s/%s/adapter.gguf", dir, e->d_name);
        if (stat(p, &sb) != 0) continue;
        if (n > best) best = n;
    }
    closedir(d);
    if (best < 0) return LOFT_OK;
    size_t need = strlen(dir) + pl + 32;
    *out = malloc(need);
    if (!*out) return loft_fail(st, LOFT_ERR_NOMEM, "out of memory");
    snprintf(*out, need, "%s/" CKPT_PREFIX "%08lld", dir, best);
    return LOFT_OK;
}
