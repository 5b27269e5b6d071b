/* session_tls: TLS for a session, after STARTTLS (RFC 3207) or from the
 * first byte on a TLS listener; one way to start it for both. */
#include <event2/buffer.h>
#include "smtp/session_priv.h"
#include "smtp/tls.h"

bool tls_offered(const struct session *s)
{
    /* The session's own configuration says whether TLS is set up (a reload
     * that cannot load the certificate is refused as a whole). */
    return s->mode == LISTEN_STARTTLS && !s->tls && s->cfg->tls_cert[0] != '\0';
}

bool start_tls(struct session *s, SSL *ssl)
{
    struct bufferevent *f = ssl != NULL ? tls_filter(s->env->base, s->bev, ssl) : NULL;
    if (f == NULL) {
        close_after_reply(s);
        return false;
    }
    s->bev = f;
    s->tls = true;
    bufferevent_setcb(f, on_read, on_write, on_event, s);
    bufferevent_enable(f, EV_READ | EV_WRITE);
    return true;
}

/* Its order rules are smtp_check_starttls's. */
void cmd_starttls(struct session *s, const char *arg)
{
    (void)arg;
    SSL *ssl = tls_offered(s) ? tls_ssl_new(s->env->hooks->tls(s->env->ctx)) : NULL;
    if (ssl == NULL) {
        reply(s, "454 4.7.0 TLS not available");
        return;
    }
    reply(s, "220 2.0.0 Ready to start TLS");
    /* RFC 3207 §4.2 (and CVE-2011-0411): anything the client sent after
     * STARTTLS in the clear is dropped, never read as if it came over TLS. */
    struct evbuffer *in = bufferevent_get_input(s->bev);
    evbuffer_drain(in, evbuffer_get_length(in));
    if (!start_tls(s, ssl))
        return;
    /* RFC 3207 §4.2: the client starts again from EHLO. */
    s->esmtp = false;
    s->helo[0] = '\0';
    tx_reset(s);
    set_timeouts(s, s->cfg->timeout_command_ms);
}
