#include "smtp/tls.h"

#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <stdio.h>

static void ssl_error(char *err, size_t errlen, const char *what, const char *path)
{
    char buf[256];
    ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
    snprintf(err, errlen, "%s %s: %s", what, path, buf);
    ERR_clear_error();
}

SSL_CTX *tls_ctx_new(const struct config *c, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* Renegotiation is a cheap way to make a server work hard; mail
     * clients never need it. Session tickets let clients resume. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                             SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    if (SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert) != 1) {
        ssl_error(err, errlen, "[tls] cert", c->tls_cert);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, c->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        ssl_error(err, errlen, "[tls] key", c->tls_key);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

void tls_describe(SSL *ssl, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s with cipher %s", SSL_get_version(ssl), SSL_get_cipher_name(ssl));
}

SSL *tls_ssl_new(SSL_CTX *ctx)
{
    if (ctx == NULL)
        return NULL;
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    return ssl;
}

struct bufferevent *tls_filter(struct event_base *base, struct bufferevent *bev, SSL *ssl)
{
    struct bufferevent *f = bufferevent_openssl_filter_new(base, bev, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                           BEV_OPT_CLOSE_ON_FREE);
    if (f == NULL)
        SSL_free(ssl);
    return f;
}
