/* session_auth: AUTH (RFC 4954) with PLAIN and LOGIN; the check itself is
 * the auth backend's (auth/auth.h), asked asynchronously. Around it, the
 * account rules (store/accounts.h, SPEC §4): an account locked against
 * this prefix is refused before any check; a failure that repeats an
 * earlier one counts nowhere, any other is an offence for the guard and
 * counts toward the account; every 535 is answered after failure_delay
 * (the tarpit). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <openssl/crypto.h>
#include "base/log.h"
#include "store/store.h"
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

/* ---- the account rules (SPEC §4): a pool job in a cluster, where they ask
 * Redis; inline on one node, where they are a table lookup. ---- */

enum acct_step { STEP_MAY, STEP_FAILED, STEP_SUCCEEDED };

struct acct_job {
    struct session *s;           /* NULL for STEP_SUCCEEDED: nothing comes back */
    struct accounts *accounts;
    struct config *cfg;          /* a reference */
    enum acct_step step;
    bool refused;                /* STEP_FAILED: turned away by a lock, no password check */
    bool may;                    /* STEP_MAY's answer */
    const char *why;             /* what failed when it was not the password (a literal) */
    uint64_t fp;
    struct addr prefix;
    char user[SASL_USER_MAX];
    char pass[SASL_PASS_MAX];    /* STEP_MAY: for the check that follows; wiped */
    struct accounts_failure out;
};

static struct acct_job *job_new(struct session *s, enum acct_step step)
{
    struct acct_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return NULL;
    j->s = s;
    j->accounts = s->env->accounts;
    j->cfg = config_ref(s->cfg);
    j->step = step;
    j->fp = s->auth_fp;
    j->prefix = addr_prefix_of(&s->client, s->cfg->ipv4_prefix, s->cfg->ipv6_prefix);
    util_strlcpy(j->user, s->user, sizeof j->user);
    return j;
}

static void job_free(struct acct_job *j)
{
    OPENSSL_cleanse(j->pass, sizeof j->pass);
    config_unref(j->cfg);
    free(j);
}

static void job_work(void *arg)
{
    struct acct_job *j = arg;
    int64_t now = util_now_ms();
    switch (j->step) {
    case STEP_MAY:
        j->may = accounts_may_try(j->accounts, j->cfg, j->user, &j->prefix, now);
        break;
    case STEP_FAILED:
        accounts_failed(j->accounts, j->cfg, j->user, j->fp, !j->refused, &j->prefix, now,
                        &j->out);
        break;
    case STEP_SUCCEEDED:
        accounts_succeeded(j->accounts, j->cfg, j->user, &j->prefix, now);
        break;
    }
}

static void job_done(void *arg);

/* Runs the job and then job_done: on the pool when it may wait. */
static void job_run(struct session *s, struct acct_job *j)
{
    if (accounts_waits(s->env->accounts)) {
        s->busy = true;
        pool_submit(s->env->pool, s->env->mb, job_work, job_done, j);
        return;
    }
    job_work(j);
    job_done(j);
}

/* A 535: logged, counted (a repeat nowhere), answered after failure_delay. */
static void failure_counted(struct session *s, const struct acct_job *j)
{
    struct session_env *env = s->env;
    atomic_fetch_add(&env->stats->auth_fail, 1);
    if (j->out.repeat)
        atomic_fetch_add(&env->stats->auth_repeats, 1);
    if (j->refused)
        atomic_fetch_add(&env->stats->auth_locked, 1);
    log_event(LOG_INFO, "auth", "ip", s->ip, "session", s->sid, "result", "fail",
              "user", s->user, "why", j->why, "repeat", j->out.repeat ? "yes" : NULL,
              "locked", j->refused ? "yes" : NULL, NULL);
    if (!j->out.repeat)
        offend(s, GUARD_AUTH_FAILURES);
    if (j->out.locked) {
        const struct account_lock *l = &j->out.lock;
        char id[17], events[16], first[UTIL_RFC3339_LEN], last[UTIL_RFC3339_LEN],
            window[2 * UTIL_RFC3339_LEN], until[UTIL_RFC3339_LEN];
        store_id_format(l->id, id);
        snprintf(events, sizeof events, "%u", l->events);
        util_rfc3339(l->first_event_at, first);
        util_rfc3339(l->last_event_at, last);
        snprintf(window, sizeof window, "%s/%s", first, last);
        util_rfc3339(l->expires_at, until);
        atomic_fetch_add(&env->stats->account_locks, 1);
        log_event(LOG_WARN, "account_lock", "account", l->account, "reason",
                  account_reason_name(l->reason), "events", events, "window", window,
                  "until", until, "lock", id, "ip", s->ip, "session", s->sid, NULL);
    }
    s->user[0] = '\0';
    /* The tarpit: every 535 waits, whether the user exists or not, and
     * whether the password was checked or not. */
    s->busy = true;
    int64_t ms = s->cfg->failure_delay_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(s->timer, &tv);
}

static void failed(struct session *s, bool refused)
{
    struct acct_job *j = job_new(s, STEP_FAILED);
    if (j == NULL) {
        struct acct_job none = {.refused = refused};
        failure_counted(s, &none);
        return;
    }
    j->refused = refused;
    job_run(s, j);
}

static void verify(struct session *s, const char *pass);

static void job_done(void *arg)
{
    struct acct_job *j = arg;
    struct session *s = j->s;
    bool pooled = accounts_waits(j->accounts);
    if (s == NULL || (pooled && !wake(s))) {
        job_free(j);
        return;
    }
    if (j->step == STEP_FAILED)
        failure_counted(s, j);
    else if (j->may)
        verify(s, j->pass);
    else
        failed(s, true);
    job_free(j);
    /* Back from the pool with nothing left to wait for (a backend that
     * answered at once): read on. Inline, process() is still running. */
    if (pooled && !s->busy)
        carry_on(s);
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
        /* Its prefix is familiar to the account from now on; nothing to
         * wait for. */
        struct acct_job *j = job_new(s, STEP_SUCCEEDED);
        if (j != NULL) {
            j->s = NULL;
            if (accounts_waits(j->accounts)) {
                pool_submit(s->env->pool, s->env->mb, job_work, job_done, j);
            } else {
                job_work(j);
                job_free(j);
            }
        }
        reply(s, "235 2.7.0 Authentication successful");
        carry_on(s);
        return;
    }
    if (r == AUTH_TEMPFAIL) {
        /* The check could not run: counted nowhere, not toward the
         * address nor the account. */
        s->user[0] = '\0';
        atomic_fetch_add(&s->env->stats->auth_tempfail, 1);
        reply(s, "454 4.7.0 Temporary authentication failure");
        carry_on(s);
        return;
    }
    failed(s, false);
}

/* Asks the auth backend; the answer comes to auth_done. s->user holds the
 * name meanwhile (and after, if it was right). */
static void verify(struct session *s, const char *pass)
{
    struct session_env *env = s->env;
    struct auth *a = env->hooks->auth(env->ctx);
    struct addr local = {0};
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(s->fd, (struct sockaddr *)&ss, &sl) == 0)
        addr_from_sockaddr((struct sockaddr *)&ss, &local);
    struct auth_context ctx = {&s->client, &local, auth_secured(s), s->sid};
    s->busy = true;
    bool was = s->calling;
    s->calling = true;
    a->ops->verify(a, s->cfg, env->pool, env->mb, s->user, pass, &ctx, auth_done, s);
    s->calling = was;
    auth_unref(a);
}

/* First the account rules: an account locked against this prefix gets its
 * 535 without a password check. */
static void auth_check(struct session *s, const char *user, const char *pass)
{
    util_strlcpy(s->user, user, sizeof s->user);
    s->auth_fp = accounts_fingerprint(s->env->accounts, user, pass);
    struct acct_job *j = job_new(s, STEP_MAY);
    if (j == NULL) {
        verify(s, pass);
        return;
    }
    util_strlcpy(j->pass, pass, sizeof j->pass);
    job_run(s, j);
}

static void auth_plain(struct session *s, const char *b64)
{
    char user[SASL_USER_MAX], pass[SASL_PASS_MAX];
    enter_state(s, ST_CMD);
    enum sasl_plain_status st = sasl_plain_parse(b64, strlen(b64), user, pass);
    if (st == SASL_PLAIN_MALFORMED) {
        reply(s, "501 5.5.2 Cannot decode response");
        return;
    }
    if (st == SASL_PLAIN_OTHER_IDENTITY) {
        /* RFC 4954 §4: an authorization identity we will not act as (we
         * act as none but the login's own) fails the AUTH like a wrong
         * password: 535, counted, without asking the backend. */
        /* Never a repeat (no password was judged) and not toward the
         * account: the address's own failure, as a lock's refusal is. */
        util_strlcpy(s->user, user, sizeof s->user);
        OPENSSL_cleanse(pass, sizeof pass);
        struct acct_job why = {.why = "authzid"};
        failure_counted(s, &why);
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
