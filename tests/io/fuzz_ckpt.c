/* tests/io/fuzz_ckpt.c - libFuzzer target for the checkpoint readers.
 *
 * Every input is parsed as a manifest (ckpt_manifest_parse), opened as a shard file (header,
 * exact size, then every buffer read back) and read as a safetensors file. None may crash, leak
 * or read out of bounds; a manifest that parses must describe shards and tensors that tile
 * [0, n), which is re-checked here. Errors must leave a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"
#include "core/mem.h"
#include "io/ckpt.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    CkptManifest m;
    int rc = ckpt_manifest_parse(&m, (const char *)data, size, "fuzz.yaml");
    if (rc == ERR_OK) {
        uint64_t at = 0;
        for (uint32_t r = 0; r < m.world; r++) {
            if (m.shards[r].lo != at || m.shards[r].hi < at) abort();
            at = m.shards[r].hi;
        }
        if (at != m.n) abort();
        at = 0;
        for (size_t i = 0; i < m.n_tensors; i++) {
            if (m.tensors[i].offset != at) abort();
            at += m.tensors[i].count;
        }
        if (at != m.n) abort();
        ckpt_manifest_free(&m);
    } else if (!err_message()[0]) {
        abort();
    }
    err_clear();

    if (!g_path[0]) snprintf(g_path, sizeof g_path, "/tmp/dfm_fuzz_ckpt.%ld", (long)getpid());
    FILE *f = fopen(g_path, "wb");
    if (!f) abort();
    if (size) fwrite(data, 1, size, f);
    fclose(f);
    CkptShard s;
    if (ckpt_shard_open(&s, g_path) == ERR_OK) {
        uint64_t cnt = s.h.hi - s.h.lo;
        if (cnt <= (1u << 20)) {
            float *out = xmalloc(sizeof(float) * (size_t)cnt + 1);
            for (int k = 0; k < CKPT_NKINDS; k++)
                if (ckpt_kind_index((CkptKind)k, (int)s.h.has_ema) >= 0 &&
                    ckpt_shard_read(&s, (CkptKind)k, s.h.lo, s.h.hi, out) != ERR_OK)
                    abort(); /* the size was checked: every buffer must read */
            xfree(out);
        }
        ckpt_shard_close(&s);
    }
    err_clear();
    Weights w;
    if (safetensors_read(&w, g_path) == ERR_OK) weights_free(&w);
    err_clear();
    unlink(g_path);
    return 0;
}
