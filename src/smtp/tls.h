/* tls: the OpenSSL server context (TLS 1.2 and up) for STARTTLS and
 * implicit-TLS listeners. */
#ifndef PORTCULLIS_TLS_H
#define PORTCULLIS_TLS_H

#include <event2/bufferevent.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include "base/config.h"

/* NULL with a message in err when the cert or key cannot be used. */
SSL_CTX *tls_ctx_new(const struct config *c, char *err, size_t errlen);
/* A server-side SSL from `ctx`, whose reference it drops (the SSL holds
 * its own); NULL when ctx is NULL or on failure. */
SSL *tls_ssl_new(SSL_CTX *ctx);
/* A TLS filter over `bev` that owns bev and ssl from then on; NULL on
 * failure, with ssl freed and bev untouched. */
struct bufferevent *tls_filter(struct event_base *base, struct bufferevent *bev, SSL *ssl);
/* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384" for the Received: header. */
void tls_describe(SSL *ssl, char *out, size_t outlen);

#endif
