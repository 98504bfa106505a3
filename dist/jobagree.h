/* dist/jobagree.h - every rank checks that all ranks run the same job before they exchange data.
 *
 * Each rank parses the job spec itself (with its own --set options, in an MPMD launch even its
 * own file), and the reducer assumes the same sizes everywhere. dist_job_agree_spec hashes the
 * fully resolved spec (the YAML `dfm validate` prints), takes the dfm commit this binary was
 * built from and the parameter count of the model the spec describes, and compares them across
 * ranks with dist_job_agree (dist/dist.h): any difference stops every rank with one message
 * naming what differs. Collective; call it right after dist_init, before the data are fetched.
 */
#ifndef DFM_DIST_JOBAGREE_H
#define DFM_DIST_JOBAGREE_H

#include "io/jobspec.h"

/* SHA-256 of the resolved spec's YAML as 64 hex digits. */
int job_spec_sha256(const JobSpec *js, char hex[65]);

int dist_job_agree_spec(const JobSpec *js);

#endif
