// The support desk's console. Talks only to this server's /api/v1; every
// value that came from outside is put on the page with textContent, never
// as markup. The token lives in sessionStorage: this tab only.
"use strict";

const TOKEN_KEY = "portcullis.token";
const $ = (id) => document.getElementById(id);

const REASONS = {
  auth_failures: "too many failed logins (wrong user name or password)",
  unauth_attempts: "too many attempts to send mail without logging in",
  conn_rate: "too many new connections in a short time",
  escalated: "many addresses of its network were blocked, so the network was blocked",
  manual: "blocked by hand by the support desk",
};
const reasonWords = (r) => REASONS[r] || r || "unknown reason";

// ---- the API ---------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, body) {
  const opts = { headers: { Authorization: "Bearer " + sessionStorage.getItem(TOKEN_KEY) },
                 cache: "no-store" };
  if (body !== undefined) {
    opts.method = "POST";
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const res = await fetch(path, opts);
  let doc = null;
  try { doc = await res.json(); } catch (e) { /* not JSON: said below */ }
  if (res.status === 401) {
    signOut("That token was not accepted.");
    throw new ApiError(401, "That token was not accepted.");
  }
  if (!res.ok) throw new ApiError(res.status, (doc && doc.error) || ("HTTP " + res.status));
  return doc;
}

// ---- small DOM helpers (text only) ---------------------------------------

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }

function say(id, text) { $(id).textContent = text || ""; }

// ---- times --------------------------------------------------------------------

function utc(t) {
  if (!t) return "";
  return t.replace("T", " ").replace(/\.\d+Z$/, "").replace(/Z$/, "") + " UTC";
}

function ago(t) {
  if (!t) return "";
  let s = Math.round((Date.parse(t) - Date.now()) / 1000);
  const future = s > 0;
  s = Math.abs(s);
  const parts = s < 90 ? [s, "s"] : s < 5400 ? [Math.round(s / 60), "min"]
              : s < 172800 ? [Math.round(s / 3600), "h"] : [Math.round(s / 86400), "days"];
  if (s < 10) return "just now";
  const span = parts[0] + " " + parts[1];
  return future ? "in " + span : span + " ago";
}

const when = (t) => (t ? utc(t) + " (" + ago(t) + ")" : "—");

function windowText(b) {
  if (!b || !b.first_event_at) return null;
  const n = b.events ? b.events + " events, " : "";
  return n + utc(b.first_event_at) + " → " + utc(b.last_event_at || b.first_event_at);
}

// ---- the token ------------------------------------------------------------

function signOut(why) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("desk").hidden = true;
  $("who").hidden = true;
  $("gate").hidden = false;
  say("token-error", why || "");
  $("token").focus();
}

async function signIn(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
  try {
    await loadStats();
  } catch (e) {
    if (e.status !== 401) say("token-error", "The server did not answer: " + e.message);
    return;
  }
  $("gate").hidden = true;
  $("desk").hidden = false;
  $("who").hidden = false;
  say("token-error", "");
  loadBlocks();
  $("ip").focus();
}

// ---- stats at a glance ------------------------------------------------------

function uptime(s) {
  if (s < 3600) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " days";
}

async function loadStats() {
  const s = await api("/api/v1/stats");
  // The stats document is free in form: a tile only for a number the
  // server sent (account locks come with the account guard).
  const tiles = [
    [s.active_blocks - s.permanent_blocks, "temporary blocks in force"],
    [s.permanent_blocks, "permanent blocks"],
    [s.account_locks, "accounts locked"],
    [s.open_connections, "SMTP connections open"],
    [s.rejected_blocked, "refused as blocked"],
    [s.auth_fail, "failed logins"],
    [s.messages, "messages accepted"],
  ];
  const box = $("stats");
  clear(box);
  for (const [n, t] of tiles) {
    if (typeof n !== "number" || !Number.isFinite(n)) continue;
    const tile = el("div", "tile");
    tile.append(el("div", "n", Number(n).toLocaleString("en")), el("div", "t", t));
    box.append(tile);
  }
  $("node").textContent = typeof s.uptime_s === "number" ? "daemon up " + uptime(s.uptime_s) : "";
}

// ---- one address -----------------------------------------------------------

let current = null;   // the address shown

function fact(dl, name, value) {
  if (value === null || value === undefined || value === "") return;
  const dd = el("dd");
  if (value instanceof Node) dd.append(value); else dd.textContent = String(value);
  dl.append(el("dt", null, name), dd);
}

function chips(items) {
  const box = el("div", "chips");
  for (const [n, what] of items) {
    const c = el("span", n > 0 ? "chip hot" : "chip");
    c.append(el("b", null, n), document.createTextNode(" " + what));
    box.append(c);
  }
  return box;
}

function summary(st) {
  const b = st.block;
  if (st.state === "clear") {
    const last = st.last_block;
    return last ? "Not blocked now. Its last block (" + reasonWords(last.reason) + ") ended " +
                  ago(last.lifted_at || last.expires_at || last.started_at) + "."
                : "Not blocked, and never was.";
  }
  const why = reasonWords(b.reason);
  if (st.state === "permanent") return "Blocked for good since " + utc(b.started_at) + ": " + why + ". Only the desk can lift it.";
  return "Blocked since " + utc(b.started_at) + ": " + why + ". It lifts by itself " + ago(b.expires_at) + " (" + utc(b.expires_at) + ").";
}

function showStatus(st) {
  $("result").hidden = false;
  $("r-addr").textContent = st.address;
  $("r-prefix").textContent = st.prefix !== st.address ? "counted as " + st.prefix : "";
  const badge = $("r-badge");
  badge.className = "badge " + st.state;
  badge.textContent = { clear: "clear", blocked: "blocked", permanent: "permanent" }[st.state] || st.state;
  $("r-summary").textContent = summary(st);

  const dl = $("r-facts");
  clear(dl);
  const b = st.block, last = st.last_block;
  if (b) {
    fact(dl, "Reason", reasonWords(b.reason));
    fact(dl, "Since", when(b.started_at));
    fact(dl, "Until", b.expires_at ? when(b.expires_at) : "no end (permanent)");
    fact(dl, "Offending window", windowText(b));
    fact(dl, "Note", b.note);
    fact(dl, "Blocked prefix", b.address !== st.prefix ? b.address : null);
  } else if (last) {
    fact(dl, "Last block", reasonWords(last.reason) + ", " + last.state);
    fact(dl, "Last window", windowText(last) || utc(last.started_at));
  }
  const c = st.counters || {};
  fact(dl, "Counters now", chips([[c.auth_failures || 0, "failed logins"],
                                  [c.unauth_attempts || 0, "sends without login"],
                                  [c.connections || 0, "connections"],
                                  [c.concurrent || 0, "open now"]]));
  fact(dl, "Blocks lately", String(st.offenses || 0) + " within the offense memory");
  if (st.repeats) fact(dl, "Repeated failures", st.repeats + " of the failures were the same wrong password repeated — " +
                       "typically a stale password in a mail program or contact form (counted once, never a block by themselves)");

  $("lift-form").hidden = st.state === "clear";
  $("block-box").open = st.state === "clear";
}

function historyItem(b) {
  const li = el("li", b.state);
  const top = el("div", "top");
  top.append(el("span", "when", utc(b.started_at)), el("span", "badge " + b.state, b.state));
  li.append(top);
  li.append(el("div", null, reasonWords(b.reason) + (b.address ? " — " + b.address : "")));
  const w = windowText(b);
  if (w) li.append(el("div", "line", "window: " + w));
  if (b.expires_at && b.state !== "lifted") li.append(el("div", "line", (b.state === "expired" ? "ended " : "until ") + utc(b.expires_at)));
  if (b.note) li.append(el("div", "line", "note: " + b.note));
  if (b.state === "lifted") {
    const lift = el("div", "lift");
    lift.append(el("span", null, "lifted " + utc(b.lifted_at) + " by "), el("strong", null, b.lifted_by || "someone"),
                el("span", null, b.lift_reason ? ": " + b.lift_reason : " (no reason given)"));
    li.append(lift);
  }
  if (b.node) li.append(el("div", "line", "node " + b.node));
  return li;
}

async function lookup(ip) {
  say("lookup-error", "");
  say("action-error", "");
  const q = "?ip=" + encodeURIComponent(ip);
  try {
    const [st, h] = await Promise.all([api("/api/v1/status" + q), api("/api/v1/history" + q)]);
    current = ip;
    showStatus(st);
    const ol = $("history");
    clear(ol);
    for (const b of h.blocks) ol.append(historyItem(b));
    $("h-empty").hidden = h.blocks.length > 0;
  } catch (e) {
    if (e.status !== 401) say("lookup-error", e.message);
  }
}

async function act(button, path, body, done) {
  say("action-msg", "");
  say("action-error", "");
  button.disabled = true;
  try {
    const r = await api(path, body);
    say("action-msg", done(r.block));
    await Promise.all([lookup(current), loadBlocks(), loadStats()]);
    say("action-msg", done(r.block));
  } catch (e) {
    if (e.status !== 401) say("action-error", e.message);
  } finally {
    button.disabled = false;
  }
}

// ---- blocks in force --------------------------------------------------------

let blocks = [];

async function loadBlocks() {
  try {
    const r = await api("/api/v1/blocks?kind=" + encodeURIComponent($("kind").value));
    blocks = r.blocks.slice().sort((a, b) => (b.started_at || "").localeCompare(a.started_at || ""));
    drawBlocks();
  } catch (e) {
    if (e.status !== 401) $("list-count").textContent = "Could not load the list: " + e.message;
  }
}

function drawBlocks() {
  const f = $("filter").value.trim().toLowerCase();
  const shown = blocks.filter((b) => !f || [b.address, b.reason, reasonWords(b.reason), b.note || ""]
    .some((v) => String(v).toLowerCase().includes(f)));
  const ul = $("blocks");
  clear(ul);
  for (const b of shown) {
    const li = el("li");
    const btn = el("button");
    btn.type = "button";
    btn.append(el("span", "a", b.address), el("span", "badge " + b.state, b.state === "permanent" ? "permanent" : "until " + utc(b.expires_at).slice(5, 16)));
    const d = el("span", "d", reasonWords(b.reason) + " · since " + utc(b.started_at));
    if (b.note) d.append(el("span", null, " · "), el("span", "note", b.note));
    btn.append(d);
    btn.addEventListener("click", () => {
      const ip = b.address.replace(/\/(32|128)$/, "");
      $("ip").value = ip;
      lookup(ip);
      window.scrollTo({ top: 0, behavior: "smooth" });
    });
    li.append(btn);
    ul.append(li);
  }
  $("list-count").textContent = shown.length === blocks.length
    ? blocks.length + (blocks.length === 1 ? " block, newest first" : " blocks, newest first")
    : shown.length + " of " + blocks.length + " blocks match";
}

// ---- wiring ------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token").value.trim();
    $("token").value = "";
    if (t) signIn(t);
  });
  $("signout").addEventListener("click", () => signOut(""));
  $("lookup-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const ip = $("ip").value.trim();
    if (ip) lookup(ip);
  });
  $("lift-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const reason = $("lift-reason").value.trim();
    act($("lift-form").querySelector("button"), "/api/v1/unblock", { ip: current, reason },
        (b) => "Lifted. " + (b && b.address ? b.address : current) + " may send again.");
    $("lift-reason").value = "";
  });
  $("block-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const d = $("block-for").value, reason = $("block-reason").value.trim();
    const body = d === "permanent" ? { ip: current, permanent: true, reason } : { ip: current, for: d, reason };
    act($("block-form").querySelector("button"), "/api/v1/block", body,
        (b) => "Blocked " + (b && b.address ? b.address : current) + (d === "permanent" ? " for good." : " until " + utc(b && b.expires_at) + "."));
    $("block-reason").value = "";
  });
  $("filter").addEventListener("input", drawBlocks);
  $("kind").addEventListener("change", loadBlocks);
  $("refresh").addEventListener("click", () => { loadBlocks(); loadStats(); });

  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (saved) signIn(saved);
  else $("token").focus();
  setInterval(() => { if (!$("desk").hidden) loadStats().catch(() => {}); }, 30000);
});

// ---- one account (SPEC §5 account, unlock) ---------------------------------------

let currentAccount = null;

function accountSummary(a) {
  if (a.state === "locked")
    return "Locked since " + utc(a.lock.started_at) + ": " + a.lock.events + " failed logins from many addresses. " +
           "Addresses that logged in to it lately (" + a.familiar + ") still may; any other gets “wrong password”, " +
           "even with the right one, until " + utc(a.lock.expires_at) + " (" + ago(a.lock.expires_at) + ").";
  const last = a.last_lock;
  return last ? "Not locked now. Its last lock ended " + ago(last.lifted_at || last.expires_at) + "."
              : "Not locked, and never was.";
}

function lockItem(l) {
  const li = el("li", l.state);
  const top = el("div", "top");
  top.append(el("span", "when", utc(l.started_at)), el("span", "badge " + l.state, l.state));
  li.append(top);
  li.append(el("div", null, l.reason === "manual" ? "locked by hand" : "too many failed logins from many addresses"));
  const w = windowText(l);
  if (w) li.append(el("div", "line", "window: " + w));
  if (l.state === "lifted") {
    const lift = el("div", "lift");
    lift.append(el("span", null, "lifted " + utc(l.lifted_at) + " by "), el("strong", null, l.lifted_by || "someone"),
                el("span", null, l.lift_reason ? ": " + l.lift_reason : " (no reason given)"));
    li.append(lift);
  }
  if (l.node) li.append(el("div", "line", "node " + l.node));
  return li;
}

async function lookupAccount(name) {
  say("acct-error", "");
  try {
    const a = await api("/api/v1/account?name=" + encodeURIComponent(name));
    currentAccount = a.account;
    $("acct-result").hidden = false;
    $("a-name").textContent = a.account;
    const badge = $("a-badge");
    badge.className = "badge " + (a.state === "locked" ? "blocked" : "clear");
    badge.textContent = a.state;
    $("a-summary").textContent = accountSummary(a);
    const dl = $("a-facts");
    clear(dl);
    fact(dl, "Failed logins now", String(a.failures) + " (all addresses together)");
    fact(dl, "Familiar addresses", String(a.familiar));
    $("unlock-form").hidden = a.state !== "locked";
    const ol = $("locks");
    clear(ol);
    for (const l of a.locks) ol.append(lockItem(l));
    $("l-empty").hidden = a.locks.length > 0;
  } catch (e) {
    if (e.status !== 401) say("acct-error", e.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("acct-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const n = $("acct").value.trim();
    if (n) lookupAccount(n);
  });
  $("unlock-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const reason = $("unlock-reason").value.trim();
    say("acct-error", "");
    try {
      await api("/api/v1/unlock", { name: currentAccount, reason });
      $("unlock-reason").value = "";
      await lookupAccount(currentAccount);
      say("acct-msg", "Unlocked. " + currentAccount + " may log in from anywhere again.");
    } catch (e) {
      if (e.status !== 401) say("acct-error", e.message);
    }
  });
});
