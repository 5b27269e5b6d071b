#include "smtp/enforce.h"

#include <stdio.h>
#include <string.h>
#include "base/log.h"
#include "base/util.h"
#include "smtp/session.h"

/* Every line about a block, with the fields its event has (docs/LOGS.md):
 * block: ip reason events window until block session | note by;
 * unblock: ip note by block; expire: ip block. */
static void log_change(enum log_level level, const char *event, const struct guard_block *b,
                       const char *session, const char *by, const char *why)
{
    bool made = strcmp(event, "block") == 0;
    char ip[ADDR_STRLEN], id[17], events[16], until[UTIL_RFC3339_LEN] = "",
        window[2 * UTIL_RFC3339_LEN + 2] = "";
    addr_format(&b->prefix, true, ip);
    store_id_format(b->id, id);
    snprintf(events, sizeof events, "%u", b->events);
    if (b->expires_at)
        util_rfc3339(b->expires_at, until);
    if (b->first_event_at) {
        char first[UTIL_RFC3339_LEN], last[UTIL_RFC3339_LEN];
        util_rfc3339(b->first_event_at, first);
        util_rfc3339(b->last_event_at, last);
        snprintf(window, sizeof window, "%s/%s", first, last);
    }
    log_event(level, event, "ip", ip,
              "reason", made ? guard_reason_name(b->reason) : NULL,
              "events", made && b->events ? events : NULL,
              "window", made && window[0] ? window : NULL,
              "until", !made ? NULL : b->expires_at ? until : "permanent",
              "block", id, "session", session, "note", why, "by", by, NULL);
}

void enforce_made(const struct enforce *e, const struct config *c,
                  const struct guard_block *made, const char *session)
{
    struct guard_block b = *made;
    util_strlcpy(b.node, c->hostname, sizeof b.node);
    store_put(e->store, &b);
    stats_block(e->stats, b.reason);
    log_change(LOG_WARN, "block", &b, session, NULL, NULL);
    /* Enough automatic blocks inside one wider prefix block it too (its
     * own block, made and recorded like this one). */
    struct guard_block wide;
    if (b.reason != GUARD_MANUAL && b.reason != GUARD_ESCALATED &&
        guard_escalate(e->guard, c, &b.prefix, util_now_ms(), &wide))
        enforce_made(e, c, &wide, session);
}

bool enforce_block(const struct enforce *e, const struct config *c, const struct addr *prefix,
                   int64_t duration_ms, int64_t now, const char *by, const char *why,
                   struct guard_block *made)
{
    struct guard_block old;
    bool had_old;
    guard_block_manual(e->guard, prefix, duration_ms, now, made, &old, &had_old);
    if (made->id == 0)
        return false;
    if (had_old)
        store_lift(e->store, old.id, now, by, "replaced by a manual block");
    util_strlcpy(made->node, c->hostname, sizeof made->node);
    util_strlcpy(made->note, why ? why : "", sizeof made->note);
    store_put(e->store, made);
    stats_block(e->stats, GUARD_MANUAL);
    log_change(LOG_WARN, "block", made, NULL, by, why);
    return true;
}

bool enforce_unblock(const struct enforce *e, const struct config *c, struct addr *prefix,
                     int64_t now, const char *by, const char *why, uint64_t *id)
{
    bool lifted = guard_unblock(e->guard, prefix, now, id);
    if (!lifted) {
        /* The address may be under a wider block (a manual /24). */
        struct guard_status gs;
        guard_status(e->guard, c, prefix, now, &gs);
        if (gs.blocked) {
            *prefix = gs.block_prefix;
            lifted = guard_unblock(e->guard, prefix, now, id);
        }
    }
    if (!lifted)
        return false;
    store_lift(e->store, *id, now, by, why);
    struct guard_block b = {.id = *id, .prefix = *prefix};
    log_change(LOG_WARN, "unblock", &b, NULL, by, why);
    return true;
}

static void expired(void *ctx, uint64_t id, const struct addr *prefix, int64_t at)
{
    const struct enforce *e = ctx;
    store_expire(e->store, id, at);
    struct guard_block b = {.id = id, .prefix = *prefix};
    log_change(LOG_INFO, "expire", &b, NULL, NULL, NULL);
}

void enforce_expire(const struct enforce *e, int64_t now)
{
    guard_expire(e->guard, now, expired, (void *)e);
}
