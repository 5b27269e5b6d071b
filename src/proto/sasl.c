#include "proto/sasl.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

static bool b64_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

long sasl_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outlen)
{
    /* OpenSSL's EVP_DecodeBlock does the work but is lax (whitespace,
     * padding counted as data), so the shape is checked here first. */
    if (inlen % 4 != 0 || inlen > 4 * ((size_t)INT32_MAX / 4))
        return -1;
    size_t pad = 0;
    for (size_t i = 0; i < inlen; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '=') {
            if (i < inlen - 2)
                return -1;
            pad++;
        } else if (!b64_char(c) || pad > 0) {
            return -1;
        }
    }
    size_t n = inlen / 4 * 3 - pad;
    if (n + 1 > outlen)
        return -1;
    if (inlen == 0) {
        out[0] = '\0';
        return 0;
    }
    unsigned char tmp[3];
    /* EVP_DecodeBlock writes whole groups of 3; decode the last group apart
     * so a buffer of exactly n+1 bytes suffices. */
    size_t head = inlen - 4;
    if (head > 0 && EVP_DecodeBlock(out, (const unsigned char *)in, (int)head) < 0)
        return -1;
    if (EVP_DecodeBlock(tmp, (const unsigned char *)in + head, 4) != 3)
        return -1;
    memcpy(out + head / 4 * 3, tmp, 3 - pad);
    out[n] = '\0';
    return (long)n;
}

long sasl_b64_encode(const unsigned char *in, size_t inlen, char *out, size_t outlen)
{
    size_t need = (inlen + 2) / 3 * 4;
    if (need + 1 > outlen || inlen > (size_t)INT32_MAX / 2)
        return -1;
    return EVP_EncodeBlock((unsigned char *)out, in, (int)inlen);
}

bool sasl_is_cancel(const char *line)
{
    return line[0] == '*' && line[1] == '\0';
}

enum sasl_plain_status sasl_plain_parse(const char *b64, size_t len, char user[SASL_USER_MAX],
                                        char pass[SASL_PASS_MAX])
{
    unsigned char buf[SASL_USER_MAX * 2 + SASL_PASS_MAX + 4];
    long n = sasl_b64_decode(b64, len, buf, sizeof buf);
    if (n < 0)
        return SASL_PLAIN_MALFORMED;
    const unsigned char *nul1 = memchr(buf, '\0', (size_t)n);
    if (nul1 == NULL)
        return SASL_PLAIN_MALFORMED;
    const unsigned char *authc = nul1 + 1;
    size_t rest = (size_t)n - (size_t)(authc - buf);
    const unsigned char *nul2 = memchr(authc, '\0', rest);
    if (nul2 == NULL)
        return SASL_PLAIN_MALFORMED;
    size_t zlen = (size_t)(nul1 - buf), ulen = (size_t)(nul2 - authc);
    const unsigned char *pw = nul2 + 1;
    size_t plen = (size_t)n - (size_t)(pw - buf);
    if (ulen == 0 || plen == 0 || ulen >= SASL_USER_MAX || plen >= SASL_PASS_MAX ||
        zlen >= SASL_USER_MAX)
        return SASL_PLAIN_MALFORMED;
    if (memchr(pw, '\0', plen) != NULL)
        return SASL_PLAIN_MALFORMED;
    memcpy(user, authc, ulen);
    user[ulen] = '\0';
    if (zlen != 0 && (zlen != ulen || memcmp(buf, authc, ulen) != 0)) {
        OPENSSL_cleanse(buf, sizeof buf);
        return SASL_PLAIN_OTHER_IDENTITY;
    }
    memcpy(pass, pw, plen);
    pass[plen] = '\0';
    OPENSSL_cleanse(buf, sizeof buf);
    return SASL_PLAIN_OK;
}

bool sasl_plain_decode(const char *b64, size_t len, char user[SASL_USER_MAX],
                       char pass[SASL_PASS_MAX])
{
    return sasl_plain_parse(b64, len, user, pass) == SASL_PLAIN_OK;
}

bool sasl_login_decode(const char *b64, size_t len, char *out, size_t outlen)
{
    long n = sasl_b64_decode(b64, len, (unsigned char *)out, outlen);
    return n > 0 && memchr(out, '\0', (size_t)n) == NULL;
}
