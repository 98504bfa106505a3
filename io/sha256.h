/* io/sha256.h - streaming SHA-256 (OpenSSL EVP underneath).
 *
 * Kept in its own translation unit because OpenSSL's headers declare names (ERR_STATE) that
 * clash with core/err.h. A Sha256 is created, fed, and consumed by sha256_final_hex, which
 * frees it. Allocation failure inside OpenSSL is treated like out-of-memory (abort).
 */
#ifndef DFM_IO_SHA256_H
#define DFM_IO_SHA256_H

#include <stddef.h>

typedef struct Sha256 Sha256;

Sha256 *sha256_create(void);
void sha256_update(Sha256 *s, const void *p, size_t n);
/* Write the digest as 64 lowercase hex digits plus NUL, and free s. */
void sha256_final_hex(Sha256 *s, char hex[65]);

#endif
