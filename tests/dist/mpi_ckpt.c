/* tests/dist/mpi_ckpt.c - collective checkpoints: save, async save, commit, retention,
 * verification, resharded load, corrupt-checkpoint skipping.
 *
 * Without arguments (tests/dist/run.sh, at 1, 2 and 4 ranks) it runs the whole suite in a fresh
 * directory. The state is synthetic: value i of buffer k at step s is value_of(k, s, i), whose
 * bits depend on all three, so a value read from the wrong place, step or buffer is caught.
 * Modes for tests/cli/t_ckpt.sh (kill -9 at every point of the commit protocol, a full disk):
 *   mpi_ckpt save DIR STEP      save STEP into DIR (synchronous; DFM_CKPT_KILL_AT applies)
 *   mpi_ckpt save-async DIR STEP  the same through the async path (writer threads)
 *   mpi_ckpt check DIR STEP     the newest checkpoint that verifies is STEP (0: any) and loads
 *                               exactly
 * Exit status 0 when every rank passed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/mem.h"
#include "dist/ckpt.h"
#include "dist/dist.h"
#include "io/ckpt.h"
#include "io/fsutil.h"

#define N ((size_t)10007)
#define NT 3

static int g_fail;

static void check(int ok, const char *what)
{
    if (!ok) {
        g_fail = 1;
        fprintf(stderr, "mpi_ckpt: [rank %d/%d] FAILED: %s\n", dist_rank(), dist_size(), what);
        if (err_code() != ERR_OK) fprintf(stderr, "mpi_ckpt:   last error: %s\n", err_message());
    }
}

static float value_of(int k, uint64_t step, size_t i)
{
    uint64_t x = (uint64_t)i * 0x9E3779B97F4A7C15ull ^ step * 0xBF58476D1CE4E5B9ull ^
                 (uint64_t)(k + 1) * 0x94D049BB133111EBull;
    x ^= x >> 31;
    uint32_t bits = (uint32_t)(x & 0x007FFFFF) | 0x3F800000u; /* [1, 2) */
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static const CkptTensor g_tab[NT] = {
    {"a.weight", 2, {100, 50, 1, 1}, 0, 5000},
    {"a.bias", 1, {5000, 1, 1, 1}, 5000, 5000},
    {"b.odd", 1, {7, 1, 1, 1}, 10000, 7},
};

static const char *g_spec = "run:\n  name: synthetic\nmodel:\n  type: mlp\n";

typedef struct {
    float *p, *e, *m, *v;
    size_t lo, hi;
} State;

static void fill(State *s, uint64_t step)
{
    for (size_t i = 0; i < N; i++) {
        s->p[i] = value_of(0, step, i);
        s->e[i] = value_of(1, step, i);
    }
    for (size_t i = s->lo; i < s->hi; i++) {
        s->m[i - s->lo] = value_of(2, step, i);
        s->v[i - s->lo] = value_of(3, step, i);
    }
}

static CkptState as_ckpt(const State *s, uint64_t step)
{
    CkptState c = {.step = step, .n = N, .lo = s->lo, .hi = s->hi, .params = s->p, .ema = s->e,
                   .m = s->m, .v = s->v, .mlo = s->lo, .tensors = g_tab, .n_tensors = NT,
                   .spec = g_spec};
    c.counters.optim_step = step;
    c.counters.ema_updates = step / 2;
    c.counters.steps_done = step;
    return c;
}

static void state_init(State *s)
{
    ckpt_even_slice(N, dist_rank(), dist_size(), 16, &s->lo, &s->hi);
    s->p = xmalloc(sizeof(float) * N);
    s->e = xmalloc(sizeof(float) * N);
    s->m = xmalloc(sizeof(float) * (s->hi - s->lo + 1));
    s->v = xmalloc(sizeof(float) * (s->hi - s->lo + 1));
}

static void state_free(State *s)
{
    xfree(s->p);
    xfree(s->e);
    xfree(s->m);
    xfree(s->v);
}

/* Load path with the slicing of rank r of P (any P: resharding) and compare every bit. */
static int load_and_compare(const char *path, uint64_t step, int r, int P)
{
    size_t lo, hi;
    ckpt_even_slice(N, r, P, 1, &lo, &hi);
    float *p = xmalloc(sizeof(float) * N), *e = xmalloc(sizeof(float) * N);
    float *m = xmalloc(sizeof(float) * (hi - lo + 1)), *v = xmalloc(sizeof(float) * (hi - lo + 1));
    CkptManifest man;
    int rc = ckpt_load(path, &man, N, p, e, m, v, lo, hi);
    int same = rc == ERR_OK;
    for (size_t i = 0; same && i < N; i++)
        same = p[i] == value_of(0, step, i) && e[i] == value_of(1, step, i);
    for (size_t i = lo; same && i < hi; i++)
        same = m[i - lo] == value_of(2, step, i) && v[i - lo] == value_of(3, step, i);
    if (rc == ERR_OK) {
        same = same && man.step == step && man.counters.optim_step == step &&
               man.counters.ema_updates == step / 2 && man.n_tensors == NT &&
               !strcmp(man.tensors[2].name, "b.odd") && !strcmp(man.spec, g_spec);
        ckpt_manifest_free(&man);
    }
    xfree(p);
    xfree(e);
    xfree(m);
    xfree(v);
    return same;
}

static void latest_is(const char *dir, uint64_t step, const char *what)
{
    char path[4200], want[4200], name[CKPT_NAME_MAX];
    int found = 0;
    int rc = ckpt_find_latest(dir, path, sizeof path, &found);
    ckpt_step_name(name, sizeof name, step);
    snprintf(want, sizeof want, "%s/%s", dir, name);
    char msg[9000];
    snprintf(msg, sizeof msg, "%s: newest good checkpoint is %s (got %s)", what, want,
             found ? path : "none");
    check(rc == ERR_OK && found && !strcmp(path, want), msg);
}

static void path_of(char *buf, size_t size, const char *dir, uint64_t step, const char *file)
{
    char name[CKPT_NAME_MAX];
    ckpt_step_name(name, sizeof name, step);
    snprintf(buf, size, "%s/%s%s%s", dir, name, file ? "/" : "", file ? file : "");
}

static void suite(const char *dir)
{
    int rank = dist_rank(), P = dist_size();
    State s;
    state_init(&s);
    CkptPolicy pol = {.dir = dir, .keep = 2, .keep_every = 20};
    CkptSaver *sv = ckpt_saver_create(&pol);
    CkptSaveStats st;

    /* synchronous save, then load on every slicing from 1 to 5 ranks */
    fill(&s, 10);
    CkptState cs = as_ckpt(&s, 10);
    check(ckpt_save(sv, &cs, &st) == ERR_OK, "sync save of step 10");
    check(st.step == 10 && st.bytes > 4 * 4 * N, "save stats");
    char p10[4200];
    path_of(p10, sizeof p10, dir, 10, NULL);
    for (int Q = 1; Q <= 5; Q++)
        check(load_and_compare(p10, 10, rank % Q, Q), "resharded load of step 10");
    latest_is(dir, 10, "after one save");

    /* a stale partial save is cleaned by the next save */
    char stale[4200];
    path_of(stale, sizeof stale, dir, 99, NULL);
    strcat(stale, ".tmp");
    if (rank == 0) check(fs_mkdir_p(stale) == ERR_OK, "mkdir stale");
    dist_barrier();

    /* async saves: training "goes on" (the live buffers change) while the writer works */
    for (uint64_t step = 20; step <= 40; step += 10) {
        fill(&s, step);
        cs = as_ckpt(&s, step);
        check(ckpt_save_start(sv, &cs) == ERR_OK, "async start");
        fill(&s, step + 1); /* must not leak into the checkpoint */
        if (step == 40) {
            /* the blocking finish (what the training loop does before the next save) */
            check(ckpt_save_commit(sv, &st) == ERR_OK, "async commit");
        } else {
            /* the boundary path: advance whenever every rank's part of a phase is done */
            int committed = 0, advances = 0;
            while (!committed && advances < 100000) {
                double ready = ckpt_save_ready(sv);
                check(dist_allreduce_sum_f64(&ready, 1) == ERR_OK, "allreduce");
                check(ckpt_save_advance(sv, ready, &st, &committed) == ERR_OK, "async advance");
                advances++;
                usleep(1000);
            }
            check(committed && advances >= 3, "an async save commits in three phases or more");
            check(st.async && st.step == step && st.total_s >= st.stall_s, "async save stats");
        }
        check(!ckpt_save_busy(sv), "not busy after commit");
    }
    check(!fs_exists(stale), "stale .tmp directory removed by the next save");
    char p20[4200], p30[4200], p40[4200];
    path_of(p20, sizeof p20, dir, 20, NULL);
    path_of(p30, sizeof p30, dir, 30, NULL);
    path_of(p40, sizeof p40, dir, 40, NULL);
    check(!fs_exists(p10), "retention removed step 10 (keep 2)");
    check(fs_exists(p20), "retention kept step 20 (keep_every 20)");
    check(fs_exists(p30) && fs_exists(p40), "retention kept the newest two");
    check(load_and_compare(p40, 40, rank, P), "async checkpoint holds the state at its start");
    latest_is(dir, 40, "after async saves");

    /* corruption: each case makes the newest checkpoint bad; the newest good one is found */
    char f[4400], shard[CKPT_NAME_MAX];
    ckpt_shard_name(shard, sizeof shard, (uint32_t)(P - 1), (uint32_t)P);
    path_of(f, sizeof f, dir, 40, shard);
    if (rank == 0) { /* flip one byte in the middle of the last shard */
        FILE *fp = fopen(f, "r+b");
        check(fp != NULL, "open shard");
        if (fp) {
            fseek(fp, 100, SEEK_SET);
            int c = fgetc(fp);
            fseek(fp, 100, SEEK_SET);
            fputc(c ^ 0x10, fp);
            fclose(fp);
        }
    }
    dist_barrier();
    CkptManifest man;
    check(ckpt_manifest_read(&man, p40) == ERR_OK, "manifest of step 40 reads");
    int vr = ckpt_verify_collective(p40, &man);
    check(vr == ERR_INTEGRITY && strstr(err_message(), shard) != NULL,
          "flipped byte: verify fails naming the shard");
    ckpt_manifest_free(&man);
    err_clear();
    latest_is(dir, 30, "flipped byte in step 40");

    path_of(f, sizeof f, dir, 30, shard); /* truncate */
    if (rank == 0) check(truncate(f, 1000) == 0, "truncate");
    dist_barrier();
    latest_is(dir, 20, "truncated shard in step 30");

    /* missing manifest in a newer one, and a wrong format version in another */
    fill(&s, 50);
    cs = as_ckpt(&s, 50);
    check(ckpt_save(sv, &cs, &st) == ERR_OK, "save 50");
    fill(&s, 60);
    cs = as_ckpt(&s, 60);
    check(ckpt_save(sv, &cs, &st) == ERR_OK, "save 60");
    if (rank == 0) {
        path_of(f, sizeof f, dir, 60, "manifest.yaml");
        check(unlink(f) == 0, "remove manifest");
        path_of(f, sizeof f, dir, 50, "manifest.yaml");
        FILE *fp = fopen(f, "r+b");
        char buf[65536];
        size_t len = fp ? fread(buf, 1, sizeof buf - 1, fp) : 0;
        buf[len] = '\0';
        char *at = strstr(buf, "format_version: 1");
        check(at != NULL, "manifest has format_version: 1");
        if (at) at[16] = '7';
        if (fp) {
            rewind(fp);
            fwrite(buf, 1, len, fp);
            fclose(fp);
        }
        CkptManifest m2;
        path_of(f, sizeof f, dir, 50, NULL);
        check(ckpt_manifest_read(&m2, f) == ERR_FORMAT && strstr(err_message(), "version 7"),
              "wrong version: ERR_FORMAT naming the version");
        err_clear();
    }
    dist_barrier();
    latest_is(dir, 20, "missing manifest (60), wrong version (50)");

    /* a save with a changed shape table fails cleanly at load: n mismatch */
    float one;
    CkptManifest m3;
    int lr = ckpt_load(p20, &m3, N - 1, &one, NULL, &one, &one, 0, 0);
    check(lr == ERR_STATE && strstr(err_message(), "parameters"), "changed shapes refused");
    err_clear();

    ckpt_saver_destroy(sv);
    state_free(&s);
}

/* Modes for the shell tests. async: the training loop's path (the writer threads write the
 * shard and, on rank 0, commit; the live state changes meanwhile; the ranks advance the save
 * whenever the summed readiness says every rank's part of a phase is done). */
static int mode_save(const char *dir, uint64_t step, int async)
{
    State s;
    state_init(&s);
    fill(&s, step);
    CkptPolicy pol = {.dir = dir, .keep = 2};
    CkptSaver *sv = ckpt_saver_create(&pol);
    CkptState cs = as_ckpt(&s, step);
    CkptSaveStats st;
    int rc;
    if (!async) {
        rc = ckpt_save(sv, &cs, &st);
    } else {
        rc = ckpt_save_start(sv, &cs);
        fill(&s, step + 1); /* training goes on */
        int committed = 0;
        while (rc == ERR_OK && !committed) {
            double ready = ckpt_save_ready(sv);
            rc = dist_allreduce_sum_f64(&ready, 1);
            if (rc == ERR_OK) rc = ckpt_save_advance(sv, ready, &st, &committed);
            usleep(1000);
        }
    }
    if (rc != ERR_OK) fprintf(stderr, "mpi_ckpt: save failed: %s\n", err_message());
    if (rc != ERR_OK && err_hint_text()[0]) fprintf(stderr, "mpi_ckpt: hint: %s\n", err_hint_text());
    ckpt_saver_destroy(sv);
    state_free(&s);
    return rc == ERR_OK ? 0 : 3;
}

static int mode_check(const char *dir, uint64_t step)
{
    char path[4200];
    int found = 0;
    check(ckpt_find_latest(dir, path, sizeof path, &found) == ERR_OK && found, "found one");
    if (found) {
        char name[CKPT_NAME_MAX];
        const char *base = strrchr(path, '/');
        if (step == 0 && base) step = strtoull(base + 6, NULL, 10); /* any: the one found */
        ckpt_step_name(name, sizeof name, step);
        check(base && !strcmp(base + 1, name), "the expected step is the newest good one");
        check(load_and_compare(path, step, dist_rank(), dist_size()), "it loads exactly");
    }
    return g_fail;
}

int main(int argc, char **argv)
{
    if (dist_init(&argc, &argv) != ERR_OK) return 1;
    int rc;
    if (argc == 4 && (!strcmp(argv[1], "save") || !strcmp(argv[1], "save-async"))) {
        rc = mode_save(argv[2], strtoull(argv[3], NULL, 10), !strcmp(argv[1], "save-async"));
    } else if (argc == 4 && !strcmp(argv[1], "check")) {
        rc = mode_check(argv[2], strtoull(argv[3], NULL, 10));
    } else {
        char dir[256] = "";
        if (dist_rank() == 0) {
            snprintf(dir, sizeof dir, "%s/dfm_mpi_ckpt_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
            if (!mkdtemp(dir)) dir[0] = '\0';
        }
        dist_bcast(dir, sizeof dir, 0);
        check(dir[0] != '\0', "mkdtemp");
        char ck[300];
        snprintf(ck, sizeof ck, "%s/ckpt", dir);
        if (dir[0]) suite(ck);
        double bad = g_fail;
        dist_allreduce_sum_f64(&bad, 1);
        if (dist_rank() == 0 && dir[0]) {
            char cmd[400];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
            if (system(cmd) != 0) fprintf(stderr, "mpi_ckpt: could not remove %s\n", dir);
        }
        rc = bad > 0;
        if (dist_rank() == 0 && !rc) printf("mpi_ckpt: all checks passed on %d rank(s)\n", dist_size());
    }
    dist_finalize();
    return rc;
}
