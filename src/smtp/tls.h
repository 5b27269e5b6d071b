/* tls: the OpenSSL server context (TLS 1.2 and up) for STARTTLS and
 * implicit-TLS listeners. */
#ifndef PORTCULLIS_TLS_H
#define PORTCULLIS_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>
#include "base/config.h"

/* NULL with a message in err when the cert or key cannot be used. */
SSL_CTX *tls_ctx_new(const struct config *c, char *err, size_t errlen);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384" for the Received: header. */
void tls_describe(SSL *ssl, char *out, size_t outlen);

#endif
