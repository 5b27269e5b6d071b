/* session_auth: AUTH (RFC 4954) with PLAIN and LOGIN; the check itself is
 * the auth backend's (auth/auth.h), asked asynchronously. A failure is an
 * offence for the guard and is answered after failure_delay (the tarpit). */
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <openssl/crypto.h>
#include "base/log.h"
#include "smtp/session_priv.h"

/* TLS, or a network trusted to carry passwords in the clear. */
static bool auth_secured(const struct session *s)
{
    return s->tls || cidr_list_match(&s->cfg->plain_auth_from, &s->client);
}

bool auth_allowed(const struct session *s)
{
    return !s->cfg->require_tls_for_auth || auth_secured(s);
}

/* The mechanisms both the configuration and the backend offer. */
unsigned auth_mechanisms(const struct session *s)
{
    struct auth *a = s->env->hooks->auth(s->env->ctx);
    unsigned m = a->ops->mechanisms(a);
    auth_unref(a);
    return m & ((s->cfg->mech_plain ? AUTH_MECH_PLAIN : 0) |
                (s->cfg->mech_login ? AUTH_MECH_LOGIN : 0));
}

void auth_fail_reply(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct session *s = arg;
    if (!wake(s))
        return;
    reply(s, "535 5.7.8 Authentication credentials invalid");
    process(s);
}

static void auth_done(void *arg, enum auth_result r)
{
    struct session *s = arg;
    if (!wake(s))
        return;
    enter_state(s, ST_CMD);
    if (r == AUTH_OK) {
        s->authed = true;
        atomic_fetch_add(&s->env->stats->auth_ok, 1);
        log_event(LOG_INFO, "auth", "ip", s->ip, "session", s->sid, "result", "ok",
                  "user", s->user, NULL);
        reply(s, "235 2.7.0 Authentication successful");
        carry_on(s);
        return;
    }
    if (r == AUTH_TEMPFAIL) {
        s->user[0] = '\0';
        reply(s, "454 4.7.0 Temporary authentication failure");
        carry_on(s);
        return;
    }
    atomic_fetch_add(&s->env->stats->auth_fail, 1);
    log_event(LOG_INFO, "auth", "ip", s->ip, "session", s->sid, "result", "fail",
              "user", s->user, NULL);
    s->user[0] = '\0';
    offend(s, GUARD_OFFENSE_AUTH);
    /* The tarpit: every 535 waits, whether the user exists or not. */
    s->busy = true;
    int64_t ms = s->cfg->failure_delay_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
}

/* Asks the auth backend; the answer comes to auth_done. s->user holds the
 * name meanwhile (and after, if it was right). */
static void auth_check(struct session *s, const char *user, const char *pass)
{
    struct session_env *env = s->env;
    struct auth *a = env->hooks->auth(env->ctx);
    struct addr local = {0};
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(s->fd, (struct sockaddr *)&ss, &sl) == 0)
        addr_from_sockaddr((struct sockaddr *)&ss, &local);
    struct auth_context ctx = {&s->client, &local, auth_secured(s), s->sid};
    util_strlcpy(s->user, user, sizeof s->user);
    s->busy = true;
    s->calling = true;
    a->ops->verify(a, s->cfg, env->pool, env->mb, user, pass, &ctx, auth_done, s);
    s->calling = false;
    auth_unref(a);
}

static void auth_plain(struct session *s, const char *b64)
{
    char user[SASL_USER_MAX], pass[SASL_PASS_MAX];
    enter_state(s, ST_CMD);
    if (!sasl_plain_decode(b64, strlen(b64), user, pass)) {
        reply(s, "501 5.5.2 Cannot decode response");
        return;
    }
    auth_check(s, user, pass);
    OPENSSL_cleanse(pass, sizeof pass);
}

/* Its order rules are smtp_check_auth's. */
void cmd_auth(struct session *s, const char *arg)
{
    char mech[32];
    size_t n = strcspn(arg, " ");
    if (n == 0 || n >= sizeof mech) {
        reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
        return;
    }
    memcpy(mech, arg, n);
    mech[n] = '\0';
    const char *ir = arg[n] == ' ' ? arg + n + 1 : NULL;
    unsigned offered = auth_mechanisms(s);
    bool plain = strcasecmp(mech, "PLAIN") == 0 && (offered & AUTH_MECH_PLAIN);
    bool login = strcasecmp(mech, "LOGIN") == 0 && (offered & AUTH_MECH_LOGIN);
    if (!plain && !login) {
        reply(s, "504 5.5.4 Unrecognized authentication mechanism");
        return;
    }
    if (!auth_allowed(s)) {
        reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
        return;
    }
    if (ir != NULL && strcmp(ir, "=") == 0)
        ir = "";      /* RFC 4954 §4: "=" is an empty initial response */
    if (plain) {
        if (ir == NULL) {
            enter_state(s, ST_AUTH_PLAIN);
            reply(s, "334 ");
        } else {
            auth_plain(s, ir);
        }
        return;
    }
    if (ir == NULL) {
        enter_state(s, ST_AUTH_USER);
        reply(s, "334 VXNlcm5hbWU6");   /* "Username:" */
        return;
    }
    if (!sasl_login_decode(ir, strlen(ir), s->user, sizeof s->user)) {
        reply(s, "501 5.5.2 Cannot decode response");
        return;
    }
    enter_state(s, ST_AUTH_PASS);
    reply(s, "334 UGFzc3dvcmQ6");       /* "Password:" */
}

void auth_response(struct session *s, const char *line)
{
    if (sasl_is_cancel(line)) {
        enter_state(s, ST_CMD);
        s->user[0] = '\0';
        reply(s, "501 5.0.0 Authentication cancelled");
        return;
    }
    if (s->state == ST_AUTH_PLAIN) {
        auth_plain(s, line);
        return;
    }
    if (s->state == ST_AUTH_USER) {
        if (!sasl_login_decode(line, strlen(line), s->user, sizeof s->user)) {
            enter_state(s, ST_CMD);
            reply(s, "501 5.5.2 Cannot decode response");
            return;
        }
        enter_state(s, ST_AUTH_PASS);
        reply(s, "334 UGFzc3dvcmQ6");
        return;
    }
    char pass[SASL_PASS_MAX];
    enter_state(s, ST_CMD);
    if (!sasl_login_decode(line, strlen(line), pass, sizeof pass)) {
        s->user[0] = '\0';
        reply(s, "501 5.5.2 Cannot decode response");
        return;
    }
    char user[SASL_USER_MAX];
    util_strlcpy(user, s->user, sizeof user);
    s->user[0] = '\0';
    auth_check(s, user, pass);
    OPENSSL_cleanse(pass, sizeof pass);
}
