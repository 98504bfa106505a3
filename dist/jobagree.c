/* dist/jobagree.c - ranks agree on the job (see dist/jobagree.h). */
#include "dist/jobagree.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "dist/dist.h"
#include "dist/jobconf.h"
#include "io/sha256.h"
#include "model/net.h"

#ifndef DFM_GIT_COMMIT
#define DFM_GIT_COMMIT "unknown"
#endif

int job_spec_sha256(const JobSpec *js, char hex[65])
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return ERR(ERR_IO, "cannot hash the job spec: %s", strerror(errno));
    int rc = jobspec_emit(js, f);
    if (fclose(f) != 0 && rc == ERR_OK) rc = ERR(ERR_IO, "cannot hash the job spec");
    if (rc == ERR_OK) {
        Sha256 *s = sha256_create();
        sha256_update(s, buf, len);
        sha256_final_hex(s, hex);
    }
    free(buf);
    return rc;
}

int dist_job_agree_spec(const JobSpec *js)
{
    char hex[65];
    TRY(job_spec_sha256(js, hex));
    NetConfig nc;
    jobconf_net(js, &nc);
    return dist_job_agree(hex, DFM_GIT_COMMIT, (uint64_t)net_count_params(&nc));
}
