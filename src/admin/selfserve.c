#include "admin/selfserve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "base/util.h"

enum selfserve_format selfserve_format_of(const char *query)
{
    /* Only the exact forms: "format=json" anywhere among the parameters. */
    for (const char *p = query; p != NULL && *p != '\0';) {
        size_t n = strcspn(p, "&");
        if (n == 11 && strncmp(p, "format=json", 11) == 0)
            return SELFSERVE_JSON;
        if (n == 11 && strncmp(p, "format=text", 11) == 0)
            return SELFSERVE_TEXT;
        p += n + (p[n] == '&');
    }
    return SELFSERVE_HTML;
}

const char *selfserve_reason_words(const char *reason)
{
    static const struct {
        const char *name, *words;
    } w[] = {
        {"auth_failures", "too many failed logins (a wrong user name or password) in a short time"},
        {"unauth_attempts", "too many attempts to send mail without logging in first"},
        {"conn_rate", "too many new connections in a short time"},
        {"escalated", "many addresses of the same network were blocked, so the network was blocked"},
        {"manual", "blocked by our support team"},
    };
    for (size_t i = 0; reason != NULL && i < ARRAY_LEN(w); i++)
        if (strcmp(reason, w[i].name) == 0)
            return w[i].words;
    return "an abuse rule";
}

/* ---- the JSON answer ------------------------------------------------- */

static json_t *public_block(const json_t *b)
{
    if (!json_is_object(b))
        return json_null();
    json_t *o = json_deep_copy(b);
    /* Who lifted it, why, the desk's own note and which node: the desk's
     * business, not the public's. */
    static const char *const hidden[] = {"lifted_by", "lift_reason", "node", "note", "id"};
    for (size_t i = 0; i < ARRAY_LEN(hidden); i++)
        json_object_del(o, hidden[i]);
    return o;
}

static char *render_json(const json_t *st, size_t *len)
{
    json_t *o = json_object();
    static const char *const keep[] = {"address", "prefix", "state"};
    for (size_t i = 0; i < ARRAY_LEN(keep); i++)
        json_object_set(o, keep[i], json_object_get(st, keep[i]));
    json_object_set_new(o, "block", public_block(json_object_get(st, "block")));
    json_object_set_new(o, "last_block", public_block(json_object_get(st, "last_block")));
    char *out = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    if (out != NULL) {
        *len = strlen(out);
        /* A final newline for curl in a terminal. */
        char *grown = realloc(out, *len + 2);
        if (grown == NULL) {
            free(out);
            return NULL;
        }
        grown[(*len)++] = '\n';
        grown[*len] = '\0';
        out = grown;
    }
    return out;
}

/* ---- what the text and HTML answers say ------------------------------- */

struct facts {
    const char *address, *prefix, *state;      /* state: clear | blocked | permanent */
    const char *reason, *since, *until;         /* of the block in force */
    const char *last_reason, *last_state, *first, *last;  /* the newest block */
    char since_b[32], until_b[32], first_b[32], last_b[32];
};

static const char *str(const json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v != NULL ? v : "";
}

/* "2026-12-04T23:15:54.123Z" -> "2026-12-04 23:15:54 UTC"; "" stays "". */
static const char *human_time(const char *t, char out[32])
{
    if (strlen(t) < 19)
        return t;
    snprintf(out, 32, "%.10s %.8s UTC", t, t + 11);
    return out;
}

static void facts_of(const json_t *st, struct facts *f)
{
    memset(f, 0, sizeof *f);
    f->address = str(st, "address");
    f->prefix = str(st, "prefix");
    f->state = str(st, "state");
    const json_t *b = json_object_get(st, "block"), *l = json_object_get(st, "last_block");
    f->reason = str(b, "reason");
    f->since = human_time(str(b, "started_at"), f->since_b);
    f->until = human_time(str(b, "expires_at"), f->until_b);
    f->last_reason = str(l, "reason");
    f->last_state = str(l, "state");
    f->first = human_time(str(l, "first_event_at")[0] ? str(l, "first_event_at") : str(l, "started_at"),
                          f->first_b);
    f->last = human_time(str(l, "last_event_at")[0] ? str(l, "last_event_at") : str(l, "started_at"),
                         f->last_b);
}

static const char *const habits[] = {
    "Never send without logging in: every contact form, script and mail app needs the account's user name and password.",
    "Do not leave a stale password in a contact form or mail app after changing it: each failed login counts.",
    "Watch for scripts that open many connections at once (say 200 in a minute or two) or that send abuse.",
};

static const char *headline(const struct facts *f)
{
    if (strcmp(f->state, "permanent") == 0)
        return "blocked permanently";
    if (strcmp(f->state, "blocked") == 0)
        return "blocked";
    return "not blocked";
}

static void render_text(FILE *o, const struct facts *f)
{
    fprintf(o, "Your outbound IP address: %s\n", f->address);
    fprintf(o, "State: %s\n", headline(f));
    if (strcmp(f->state, "clear") != 0) {
        fprintf(o, "Reason: %s\n", selfserve_reason_words(f->reason));
        fprintf(o, "Since: %s\n", f->since);
        fprintf(o, "Until: %s\n", f->until[0] ? f->until : "no end: only our support can lift it");
    }
    if (f->last_state[0] != '\0') {
        fprintf(o, "Last block: %s (%s)\n", selfserve_reason_words(f->last_reason), f->last_state);
        fprintf(o, "Last block window: %s to %s (look in your own logs for this time)\n",
                f->first, f->last);
    }
    fputs("\nWhat to do:\n", o);
    if (strcmp(f->state, "blocked") == 0)
        fputs("- This block lifts by itself at the time shown. Another offence after that\n"
              "  makes the next block longer, and in the end permanent.\n", o);
    else if (strcmp(f->state, "permanent") == 0)
        fputs("- A permanent block does not lift by itself: fix the cause, then contact our\n"
              "  support with this address.\n", o);
    else
        fputs("- Nothing: mail from this address is accepted (after logging in).\n", o);
    for (size_t i = 0; i < ARRAY_LEN(habits); i++)
        fprintf(o, "- %s\n", habits[i]);
}

/* ---- HTML ----------------------------------------------------------- */

static void esc(FILE *o, const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '<': fputs("&lt;", o); break;
        case '>': fputs("&gt;", o); break;
        case '&': fputs("&amp;", o); break;
        case '"': fputs("&quot;", o); break;
        case '\'': fputs("&#39;", o); break;
        default: fputc(*s, o);
        }
    }
}

static void row(FILE *o, const char *k, const char *v)
{
    fputs("<tr><th>", o);
    esc(o, k);
    fputs("</th><td>", o);
    esc(o, v);
    fputs("</td></tr>\n", o);
}

static const char css[] =
    "body{font:16px/1.5 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;background:#f4f5f7;color:#1d2330}"
    "main{max-width:44rem;margin:0 auto;padding:1.5rem 1rem}"
    "h1{font-size:1.3rem;margin:0 0 1rem}"
    ".card{background:#fff;border-radius:10px;padding:1.2rem 1.4rem;margin:0 0 1rem;box-shadow:0 1px 3px #0002}"
    ".ip{font:600 1.8rem/1.2 ui-monospace,monospace;word-break:break-all}"
    ".state{display:inline-block;margin-top:.5rem;padding:.2rem .7rem;border-radius:99px;font-weight:600}"
    ".clear{background:#dcf5e3;color:#13612d}.blocked{background:#fde7c8;color:#7a4500}"
    ".permanent{background:#fbd9d9;color:#8a1212}"
    "table{border-collapse:collapse;width:100%}th{text-align:left;font-weight:500;color:#5b6475;"
    "padding:.3rem 1rem .3rem 0;vertical-align:top;white-space:nowrap}td{padding:.3rem 0}"
    "li{margin:.3rem 0}small{color:#5b6475}code{background:#eef0f3;padding:0 .3rem;border-radius:4px}";

static void render_html(FILE *o, const struct facts *f)
{
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
          "<title>Is my address blocked?</title><style>", o);
    fputs(css, o);
    fputs("</style></head><body><main>\n<h1>Is my address blocked?</h1>\n<section class=\"card\">"
          "<small>Your outbound IP address, as our mail servers see it</small>\n<div class=\"ip\">", o);
    esc(o, f->address);
    fprintf(o, "</div>\n<div class=\"state %s\">", strcmp(f->state, "permanent") == 0 ? "permanent"
                                                    : strcmp(f->state, "blocked") == 0 ? "blocked"
                                                                                        : "clear");
    esc(o, headline(f));
    fputs("</div></section>\n", o);
    if (strcmp(f->state, "clear") != 0 || f->last_state[0] != '\0') {
        fputs("<section class=\"card\"><table>\n", o);
        if (strcmp(f->state, "clear") != 0) {
            row(o, "Why", selfserve_reason_words(f->reason));
            row(o, "Since", f->since);
            row(o, "Until", f->until[0] ? f->until : "no end: only our support can lift it");
        }
        if (f->last_state[0] != '\0') {
            char window[80];
            snprintf(window, sizeof window, "%s to %s", f->first, f->last);
            row(o, "Last block", selfserve_reason_words(f->last_reason));
            row(o, "Last block window", window);
        }
        fputs("</table>\n<p><small>The window is when the offending attempts came: look in your own "
              "logs (web server, contact forms, mail apps) for that time.</small></p></section>\n", o);
    }
    fputs("<section class=\"card\"><h1>What to do</h1><ul>\n", o);
    if (strcmp(f->state, "blocked") == 0)
        fputs("<li>This block lifts by itself at the time shown. Another offence after that makes "
              "the next block longer, and in the end permanent.</li>\n", o);
    else if (strcmp(f->state, "permanent") == 0)
        fputs("<li>A permanent block does not lift by itself: fix the cause, then contact our support "
              "with this address.</li>\n", o);
    else
        fputs("<li>Nothing: mail from this address is accepted (after logging in).</li>\n", o);
    for (size_t i = 0; i < ARRAY_LEN(habits); i++) {
        fputs("<li>", o);
        esc(o, habits[i]);
        fputs("</li>\n", o);
    }
    fputs("</ul><p><small>From a server, with curl: add <code>?format=text</code> or "
          "<code>?format=json</code> to this page's address.</small></p></section>\n"
          "</main></body></html>\n", o);
}

char *selfserve_render(const json_t *status, enum selfserve_format f, size_t *len,
                       const char **content_type)
{
    if (f == SELFSERVE_JSON) {
        *content_type = "application/json";
        return render_json(status, len);
    }
    struct facts facts;
    facts_of(status, &facts);
    char *out = NULL;
    FILE *o = open_memstream(&out, len);
    if (o == NULL)
        return NULL;
    if (f == SELFSERVE_TEXT) {
        *content_type = "text/plain; charset=utf-8";
        render_text(o, &facts);
    } else {
        *content_type = "text/html; charset=utf-8";
        render_html(o, &facts);
    }
    if (fclose(o) != 0) {
        free(out);
        return NULL;
    }
    return out;
}
