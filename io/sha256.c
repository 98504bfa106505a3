/* io/sha256.c - SHA-256 through OpenSSL's EVP interface. */
#include "io/sha256.h"

#include <openssl/evp.h>

#include "core/mem.h"

struct Sha256 {
    EVP_MD_CTX *ctx;
};

Sha256 *sha256_create(void)
{
    Sha256 *s = xmalloc(sizeof *s);
    s->ctx = EVP_MD_CTX_new();
    ASSERT(s->ctx != NULL);
    ASSERT(EVP_DigestInit_ex(s->ctx, EVP_sha256(), NULL) == 1);
    return s;
}

void sha256_update(Sha256 *s, const void *p, size_t n)
{
    ASSERT(EVP_DigestUpdate(s->ctx, p, n) == 1);
}

void sha256_final_hex(Sha256 *s, char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    ASSERT(EVP_DigestFinal_ex(s->ctx, d, &n) == 1 && n == 32);
    EVP_MD_CTX_free(s->ctx);
    xfree(s);
    for (unsigned i = 0; i < 32; i++) {
        hex[2 * i] = digits[d[i] >> 4];
        hex[2 * i + 1] = digits[d[i] & 15];
    }
    hex[64] = '\0';
}
