/*
 * atomic_file.h - files that appear whole or not at all.
 *
 * Everything loft writes (adapters, checkpoints, models, reports) goes
 * through here: the bytes go to PATH.tmp.<pid> next to PATH, which is then
 * flushed, fsynced, closed and renamed onto PATH, and the directory is
 * fsynced so the rename survives a crash. Any failure on the way (a full
 * disk, a file-size limit, a write error reported only at close) removes the
 * temporary and leaves an existing PATH exactly as it was. Opening PATH
 * also removes the PATH.tmp.<pid> files of loft processes that were killed
 * before they could clean up.
 */
#ifndef LOFT_BASE_ATOMIC_FILE_H
#define LOFT_BASE_ATOMIC_FILE_H

#include <stdbool.h>
#include <stdio.h>

#include "loft.h"

typedef struct atomic_file {
    FILE *f;    /* write through this stream between open and commit/abort */
    char *path; /* final name (owned copy) */
    char *tmp;  /* temporary name (owned) */
} atomic_file;

/* Creates the temporary for path and opens af->f on it ("wb"). On failure
 * af holds nothing and st names the temporary and the system's reason. */
loft_code atomic_file_open(atomic_file *af, const char *path, loft_status *st);

/* Finishes the file: checks the stream's error flag, flushes, fsyncs,
 * closes, renames onto the final name and fsyncs the directory. On failure
 * the temporary is removed, the final name is untouched and st says which
 * step failed and why ("PATH: cannot write ...: File too large"). af is
 * released either way. */
loft_code atomic_file_commit(atomic_file *af, loft_status *st);

/* Closes and removes the temporary without touching the final name; af is
 * released. Safe on a zeroed or already released af. */
void atomic_file_abort(atomic_file *af);

/* True when name is prefix followed by a decimal process id (optionally
 * then ".old") of a process that no longer exists: what a loft killed by
 * SIGKILL or a power cut left behind. A live or unknown owner (including
 * this process) gives false, so another loft's work in progress is never
 * touched. */
bool atomic_tmp_is_stale(const char *name, const char *prefix);

/* fsyncs the directory that holds path, so a rename or unlink in it is
 * durable. Returns LOFT_ERR_IO with the reason in st on failure. */
loft_code atomic_sync_parent(const char *path, loft_status *st);

#endif
