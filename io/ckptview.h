/* io/ckptview.h - what `dfm ckpt` shows and does: list, verify, inspect, export.
 *
 * Every function takes a run directory (its ckpt/ subdirectory is used), a checkpoint directory
 * (checkpoint.dir) or one checkpoint (step-N), as io/ckpt.h ckpt_resolve understands them, and
 * prints to out. Verification and export need no MPI and read the files directly.
 */
#ifndef DFM_IO_CKPTVIEW_H
#define DFM_IO_CKPTVIEW_H

#include <stdio.h>

/* One line per checkpoint: step, time, size, world size, committed/partial/corrupt, latest. */
int ckptview_list(FILE *out, const char *arg);
/* Check every shard's size and SHA-256 (every committed checkpoint, or the one given).
 * Fails with ERR_INTEGRITY naming the file and its byte count. Reports MB/s. */
int ckptview_verify(FILE *out, const char *arg);
/* The manifest: counters, slice table, parameter table (and the job spec with show_spec). */
int ckptview_inspect(FILE *out, const char *arg, int show_spec);
/* Export EMA (use_ema) or live weights of one checkpoint (or the latest) to dest as
 * safetensors (format "safetensors") or a dfm weights file ("weights"; both buffers). The
 * checkpoint is verified first. */
int ckptview_export(FILE *out, const char *arg, const char *dest, const char *format, int use_ema);

#endif
