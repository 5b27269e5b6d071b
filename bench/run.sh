#!/bin/bash
# bench/run.sh: the `make bench` driver. Runs, in one sitting, each workload
# against portcullisd, the reference limit server (bench-limit) and a private
# Postfix (+ Dovecot SASL) instance, all on loopback ports inside a temporary
# directory, and prints one table with ratios; writes it with the date, the
# machine and the exact commands into docs/BENCHMARKS.md.
#
# Never touches a system Postfix or Dovecot: both run from configuration,
# queue and state directories inside the temp dir, on their own ports.
#
# Environment (defaults in brackets):
#   BENCH_RUNS [3]            runs per workload and server (the median counts)
#   BENCH_SECONDS [10]        seconds per run
#   BENCH_BUILD [build]       the meson build directory
#   BENCH_OUT [docs/BENCHMARKS.md]   where the report goes; "-" for none
#   BENCH_PORT_BASE [24250]   ports used: base .. base+7 (keep them out of the
#                             ephemeral range, or a server restart can find its port taken);
#                             authdovecot and bigmsg reuse the relay's and portcullisd's
#   BENCH_IDLE_CONNS [100000] idle plain connections held by portcullisd
#   BENCH_TLS_IDLE [10000]    idle TLS connections held by portcullisd
#   BENCH_BLOCKED_IDLE [10000] blocked clients that never send QUIT
#   BENCH_POSTFIX_IDLE [300]  idle connections held by Postfix (a process each)
#   BENCH_SKIP_POSTFIX [0]    1: leave Postfix out (reason printed)
#   BENCH_SPRAY_N ["100000 1000000"]  addresses per spray run (bench/spray.py)
#   BENCH_SPRAY_TRACKED [10000]       max_tracked of the sprayed daemon
#   BENCH_ONLY [all]          space-separated subset of: greet greettls session tls relay authdovecot
#                             authfail bigmsg idle guard spray
#   BENCH_BIGMSG_N [8]        bigmsg: sessions at once, each sending one message of
#   BENCH_BIGMSG_SIZE [25000000]  bytes (bench/bigmsg.py)
#   BENCH_KEEP [0]            1: keep the temp dir (logs, configs) and print its path
set -u

REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO" || exit 1
RUNS=${BENCH_RUNS:-3}
SECS=${BENCH_SECONDS:-10}
BUILD=${BENCH_BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$REPO/$BUILD" ;; esac
OUT=${BENCH_OUT:-$REPO/docs/BENCHMARKS.md}
PORT_BASE=${BENCH_PORT_BASE:-24250}
IDLE_CONNS=${BENCH_IDLE_CONNS:-100000}
TLS_IDLE=${BENCH_TLS_IDLE:-10000}
BLOCKED_IDLE=${BENCH_BLOCKED_IDLE:-10000}
PF_IDLE=${BENCH_POSTFIX_IDLE:-300}
ONLY=${BENCH_ONLY:-greet greettls session tls relay authdovecot authfail bigmsg idle guard spray}
BIGMSG_N=${BENCH_BIGMSG_N:-8}
BIGMSG_SIZE=${BENCH_BIGMSG_SIZE:-25000000}
SPRAY_N=${BENCH_SPRAY_N:-100000 1000000}
SPRAY_TRACKED=${BENCH_SPRAY_TRACKED:-10000}
PY=/usr/bin/python3

LG="$BUILD/bench/smtp-loadgen"
LIMIT="$BUILD/bench/bench-limit"
GB="$BUILD/bench/guard-bench"
PD="$BUILD/portcullisd"
PCTL="$BUILD/portcullisctl"

P_LIMIT=$PORT_BASE
P_PD=$((PORT_BASE + 1))
P_PF=$((PORT_BASE + 2))
P_PD_TLS=$((PORT_BASE + 3))   # portcullisd's implicit-TLS (/tls) listener
P_PDR=$((PORT_BASE + 4))   # portcullisd in relay mode with Dovecot auth
P_PFR=$((PORT_BASE + 5))   # Postfix's loopback smtpd behind it (XFORWARD, no SASL)
P_LIMITQ=$((PORT_BASE + 6))   # bench-limit -q: waits for QUIT, answers 221
P_SPRAY=$((PORT_BASE + 7))    # the sprayed portcullisd (bench/spray.py)

want() { case " $ONLY " in *" $1 "*) return 0 ;; esac; return 1; }
say() { printf '%s\n' "$*" >&2; }

for b in "$LG" "$LIMIT"; do
  if [ ! -x "$b" ]; then
    say "bench: $b is missing: build first (make, or ninja -C $BUILD)"
    exit 1
  fi
done
[ -x "$PY" ] || { say "bench: $PY is needed for the report (apt-get install python3)"; exit 1; }

# Many sockets: the generator and the servers it starts inherit this.
ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null

T=$(mktemp -d /tmp/portcullis-bench.XXXXXX) || exit 1
chmod 755 "$T"   # Postfix and Dovecot drop privileges and must reach their dirs
RES="$T/results.tsv"
CMDS="$T/commands.txt"
SKIPS="$T/skipped.txt"
NOTES="$T/notes.txt"
: > "$RES"; : > "$CMDS"; : > "$SKIPS"; : > "$NOTES"

PIDS=""
PF_CONF=""
cleanup() {
  set +e
  if [ -n "$PF_CONF" ]; then postfix -c "$PF_CONF" stop >/dev/null 2>&1; fi
  for p in $PIDS; do kill "$p" 2>/dev/null; done
  local i=0 alive
  while [ $i -lt 50 ]; do
    alive=""
    for p in $PIDS; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
    [ -z "$alive" ] && break
    sleep 0.1; i=$((i + 1))
  done
  for p in $PIDS; do { kill -9 "$p" && wait "$p"; } 2>/dev/null; done
  if [ "${BENCH_KEEP:-0}" = 1 ]; then say "bench: kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

skip() { printf '%s\t%s\n' "$1" "$2" >> "$SKIPS"; say "bench: SKIPPED $1: $2"; }
note() { printf '%s\n' "$*" >> "$NOTES"; say "bench: note: $*"; }

port_free() {
  ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
wait_port() {   # PORT SECONDS PID
  local i=0
  while [ $i -lt $(($2 * 10)) ]; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    if [ -n "${3:-}" ] && ! kill -0 "$3" 2>/dev/null; then return 1; fi
    sleep 0.1; i=$((i + 1))
  done
  return 1
}

read -r eph_lo eph_hi < /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || { eph_lo=0; eph_hi=0; }
if [ "$P_SPRAY" -ge "${eph_lo:-0}" ] && [ "$P_LIMIT" -le "${eph_hi:-0}" ]; then
  say "bench: warning: ports $P_LIMIT-$P_SPRAY lie in the ephemeral range $eph_lo-$eph_hi; a restart may find its port taken"
fi
for p in $P_LIMIT $P_PD $P_PF $P_PD_TLS $P_PDR $P_PFR $P_LIMITQ $P_SPRAY; do
  if ! port_free "$p"; then say "bench: port $p is in use; set BENCH_PORT_BASE"; exit 1; fi
done

# ---- process trees and their memory (PSS) --------------------------------
tree_pids() {   # ROOT_PID... -> the roots and all their descendants
  ps -e -o pid=,ppid= | awk -v roots="$*" '
    { parent[$1] = $2; pids[NR] = $1 }
    END {
      n = split(roots, r, " "); for (i = 1; i <= n; i++) keep[r[i]] = 1
      changed = 1
      while (changed) { changed = 0
        for (k in pids) { p = pids[k]; if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; changed = 1 } } }
      for (p in keep) print p
    }'
}
pss_kb() {      # ROOT_PID... -> summed Pss in kB of the trees
  local total=0 p v
  for p in $(tree_pids "$@"); do
    v=$(awk '/^Pss:/ { print $2; exit }' "/proc/$p/smaps_rollup" 2>/dev/null)
    total=$((total + ${v:-0}))
  done
  echo $total
}
server_roots() {  # SERVER -> its root pids
  case "$1" in
    limit) echo "$LIMIT_PID" ;;
    portcullisd) echo "$PD_PID" ;;
    portcullisd-relay) echo "$PDR_PID" ;;
    postfix) echo "$(tr -d ' ' < "$PF_QUEUE/pid/master.pid" 2>/dev/null) $DC_PID" ;;
  esac
}

cpu_ticks() {    # ROOT_PID... -> user+system CPU ticks of the trees so far
  local total=0 p v
  for p in $(tree_pids "$@"); do
    v=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null)
    total=$((total + ${v:-0}))
  done
  echo $total
}
HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)

# ---- running the generator ----------------------------------------------
# run_lg WORKLOAD SERVER RUN ARGS... : one run; PSS sampled halfway through,
# the server's CPU time over the run.
run_lg() {
  local wl=$1 srv=$2 run=$3; shift 3
  local log="$T/lg-$wl-$srv-$run.out"
  [ "$run" = 1 ] && printf '%s\t%s\t%s\n' "$wl" "$srv" "smtp-loadgen $*" >> "$CMDS"
  local cpu0
  cpu0=$(cpu_ticks $(server_roots "$srv"))
  "$LG" "$@" > "$log" 2>&1 &
  local lgpid=$!
  sleep "$(awk -v s="$SECS" 'BEGIN { print s / 2 }')"
  local pss
  pss=$(pss_kb $(server_roots "$srv"))
  wait $lgpid
  local cpu
  cpu=$(awk -v a="$cpu0" -v b="$(cpu_ticks $(server_roots "$srv"))" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')
  local r
  r=$(grep '^RESULT ' "$log" | tail -1)
  if [ -z "$r" ]; then r="RESULT failed=1"; say "bench: $wl/$srv run $run: no RESULT ($(tail -1 "$log"))"; fi
  printf '%s\t%s\t%s\t%s pss_kb=%s cpu_s=%s\n' "$wl" "$srv" "$run" "$r" "$pss" "$cpu" >> "$RES"
  say "  $wl $srv run $run: $(echo "$r" | awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^(rate|p50_ms|p99_ms|ok|err|codes)=/) printf "%s ", $i }')pss=${pss}kB"
}

# run_idle WORKLOAD SERVER ARGS... : PSS before the ramp and while holding.
run_idle() {
  local wl=$1 srv=$2; shift 2
  local log="$T/lg-$wl-$srv.out" err="$T/lg-$wl-$srv.err"
  printf '%s\t%s\t%s\n' "$wl" "$srv" "smtp-loadgen $*" >> "$CMDS"
  local base hold=0
  sleep 1
  base=$(pss_kb $(server_roots "$srv"))
  "$LG" "$@" > "$log" 2> "$err" &
  local lgpid=$! i=0
  while [ $i -lt 1500 ] && kill -0 $lgpid 2>/dev/null; do
    if grep -q '^HOLDING' "$err"; then
      sleep 1
      hold=$(pss_kb $(server_roots "$srv"))
      break
    fi
    sleep 0.1; i=$((i + 1))
  done
  wait $lgpid
  local r
  r=$(grep '^RESULT ' "$log" | tail -1)
  [ -z "$r" ] && r="RESULT failed=1"
  printf '%s\t%s\t1\t%s base_kb=%s hold_kb=%s\n' "$wl" "$srv" "$r" "$base" "$hold" >> "$RES"
  say "  $wl $srv: $(echo "$r" | awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^(open|open_at_start|dropped|err|codes)=/) printf "%s ", $i }')pss ${base}kB -> ${hold}kB"
}

# ---- credentials ---------------------------------------------------------
USER_CHEAP=bench@example.test
USER_YES=benchy@example.test
PASS=benchpw
"$PY" -W ignore - "$T" "$PASS" <<'EOF' || { say "bench: cannot make password hashes"; exit 1; }
import crypt, ctypes, sys
d, pw = sys.argv[1], sys.argv[2]
md5 = crypt.crypt(pw, crypt.mksalt(crypt.METHOD_MD5))
try:
    lc = ctypes.CDLL("libcrypt.so.1")
    lc.crypt_gensalt.restype = ctypes.c_char_p
    lc.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
    salt = lc.crypt_gensalt(b"$y$", 0, None, 0).decode()
except Exception:
    salt = "$y$j9T$F5Jx5fExrKuPp53xLKQ..1"
yes = crypt.crypt(pw, salt)
assert md5.startswith("$1$") and yes.startswith("$y$"), (md5, yes)
open(d + "/hash-md5", "w").write(md5)
open(d + "/hash-yes", "w").write(yes)
EOF
H_MD5=$(cat "$T/hash-md5"); H_YES=$(cat "$T/hash-yes")
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
  -subj "/CN=bench.test" -keyout "$T/key.pem" -out "$T/cert.pem" >/dev/null 2>&1 \
  || { say "bench: openssl cannot make a certificate"; exit 1; }
chmod 600 "$T/key.pem"

# ---- the limit server ----------------------------------------------------
"$LIMIT" "$P_LIMIT" > "$T/limit.log" 2>&1 &
LIMIT_PID=$!; PIDS="$PIDS $LIMIT_PID"
wait_port "$P_LIMIT" 10 "$LIMIT_PID" || { say "bench: bench-limit did not start: $(cat "$T/limit.log")"; exit 1; }
"$LIMIT" -q "$P_LIMITQ" > "$T/limitq.log" 2>&1 &
LIMITQ_PID=$!; PIDS="$PIDS $LIMITQ_PID"
wait_port "$P_LIMITQ" 10 "$LIMITQ_PID" || { say "bench: bench-limit -q did not start: $(cat "$T/limitq.log")"; exit 1; }

# ---- portcullisd -----------------------------------------------------------
# pd_start: starts portcullisd and waits until it is ready; makes sure the
# greet client 127.0.0.1 is blocked (the block persists across restarts).
PD_STARTS=0
pd_start() {
  PD_STARTS=$((PD_STARTS + 1))
  local log="$PD_DIR/portcullisd.$PD_STARTS.log" i=0
  : > "$log"
  "$PD" -c "$PD_CONF" 2> "$log" &
  PD_PID=$!; PIDS="$PIDS $PD_PID"
  # ready = it said so (event=ready); then it must listen and have its control socket
  while [ $i -lt 200 ] && kill -0 "$PD_PID" 2>/dev/null && ! grep -q 'event=ready' "$log"; do
    sleep 0.1; i=$((i + 1))
  done
  if ! wait_port "$P_PD" 5 "$PD_PID"; then
    skip portcullisd "did not start: $(tail -3 "$log" | tr '\n' ' ')"; return 1
  fi
  i=0
  while [ $i -lt 50 ] && [ ! -S "$PD_DIR/var/portcullis.sock" ]; do sleep 0.1; i=$((i + 1)); done
  if [ ! -S "$PD_DIR/var/portcullis.sock" ]; then
    skip portcullisd "no control socket at $PD_DIR/var/portcullis.sock: $(tail -3 "$log" | tr '\n' ' ')"; return 1
  fi
  local probe
  probe=$("$LG" greet -P "$P_PD" -c 1 -n 1 -d 5 -q | sed -n 's/.* codes=\([^ ]*\).*/\1/p')
  case "$probe" in
    554:*) ;;
    *)
      if ! "$PCTL" -c "$PD_CONF" block 127.0.0.1 --permanent --reason bench > "$PD_DIR/block.log" 2>&1; then
        skip portcullisd "portcullisctl block 127.0.0.1 failed: $(head -2 "$PD_DIR/block.log" | tr '\n' ' ')"; return 1
      fi
      probe=$("$LG" greet -P "$P_PD" -c 1 -n 1 -d 5 -q | sed -n 's/.* codes=\([^ ]*\).*/\1/p')
      case "$probe" in 554:*) ;; *) say "bench: warning: the blocked client got '$probe' from portcullisd, not 554" ;; esac
      ;;
  esac
  say "bench: portcullisd pid $PD_PID on 127.0.0.1:$P_PD (127.0.0.1 blocked: greeting $probe)"
  return 0
}
# pd_restart: a fresh process, so that a memory figure is not flattered by
# memory an earlier workload left in the allocator.
pd_restart() {
  kill -TERM "$PD_PID" 2>/dev/null
  local i=0
  while kill -0 "$PD_PID" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
  kill -9 "$PD_PID" 2>/dev/null
  wait "$PD_PID" 2>/dev/null
  pd_start
}

PD_OK=0; PD_PID=""
PD_DIR="$T/portcullisd"; PD_CONF="$PD_DIR/portcullis.conf"
if [ ! -x "$PD" ] || [ ! -x "$PCTL" ]; then
  skip portcullisd "$PD or $PCTL is not built"
else
  mkdir -p "$PD_DIR/var"
  printf '%s:%s\n%s:%s\n' "$USER_CHEAP" "$H_MD5" "$USER_YES" "$H_YES" > "$PD_DIR/users"
  cat > "$PD_CONF" <<EOF
; portcullisd for the bench: loopback only, limits raised so that the load
; generator is not itself blocked; the greet workload's client (127.0.0.1)
; is blocked by hand below.
[server]
hostname = portcullis.bench.test
listen = 127.0.0.1:$P_PD 127.0.0.1:$P_PD_TLS/tls
workers = auto
max_clients = 1000000
max_message_size = 25M
[tls]
cert = $T/cert.pem
key = $T/key.pem
[auth]
users = users
failure_delay = 1s
[guard]
auth_fail_limit = 1000000
unauth_limit = 1000000
conn_rate_limit = 100000000
concurrency_limit = 1000000
[store]
backend = sqlite
path = var/portcullis.db
[delivery]
mode = maildir
maildir = var/mail
[control]
socket = var/portcullis.sock
[log]
level = info
EOF
  if ! "$PD" -t -c "$PD_CONF" > "$PD_DIR/check.log" 2>&1; then
    skip portcullisd "config check failed: $(head -3 "$PD_DIR/check.log" | tr '\n' ' ')"
  elif pd_start; then
    PD_OK=1
  fi
fi

# ---- Postfix + Dovecot (private instances) --------------------------------
PF_OK=0; DC_PID=""; PF_QUEUE="$T/postfix/queue"
start_postfix() {
  command -v postfix >/dev/null && command -v dovecot >/dev/null \
    || { skip postfix "postfix or dovecot is not installed (scripts/deps.sh bench installs them as root)"; return 1; }
  [ "$(id -u)" = 0 ] || { skip postfix "a private Postfix instance needs root (it drops to the postfix user)"; return 1; }
  local D="$T/postfix"
  PF_CONF="$D/conf"
  mkdir -p "$PF_CONF" "$PF_QUEUE" "$D/data" "$T/dovecot/run" "$T/dovecot/state"
  chown postfix:postfix "$D/data"
  echo "127.0.0.1/32 REJECT" > "$PF_CONF/clients.cidr"
  cat > "$PF_CONF/main.cf" <<EOF
# A private Postfix for the bench: own config, queue and data directories,
# one smtpd on 127.0.0.1:$P_PF. Messages are queued (fsynced, as always)
# and then discarded instead of delivered; nothing leaves the machine.
compatibility_level = 3.6
queue_directory = $PF_QUEUE
data_directory = $D/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = \$myhostname
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_peername_lookup = no
maillog_file = $D/postfix.log
maillog_file_prefixes = $D
default_process_limit = 1000
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
# The blocked client is turned away at connect with 554 (and then waits for QUIT).
smtpd_delay_reject = no
smtpd_client_restrictions = check_client_access cidr:$PF_CONF/clients.cidr
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_sasl_security_options = noanonymous
smtpd_tls_cert_file = $T/cert.pem
smtpd_tls_key_file = $T/key.pem
smtpd_tls_security_level = may
smtpd_tls_auth_only = no
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
default_transport = discard:bench
relay_transport = discard:bench
local_transport = discard:bench
smtp_dns_support_level = disabled
alias_maps =
alias_database =
biff = no
message_size_limit = 52428800
EOF
  cat > "$PF_CONF/master.cf" <<EOF
127.0.0.1:$P_PF inet n - n - - smtpd
127.0.0.1:$P_PFR inet n - n - - smtpd
  -o smtpd_authorized_xforward_hosts=127.0.0.0/8
  -o smtpd_sasl_auth_enable=no
  -o smtpd_tls_security_level=none
  -o smtpd_client_restrictions=
  -o smtpd_relay_restrictions=permit_mynetworks,reject
  -o smtpd_recipient_restrictions=permit_mynetworks,reject
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
  # Dovecot: only its auth service, answering Postfix on the queue's private/auth.
  printf '%s:{PLAIN}%s\n%s:{CRYPT}%s\n' "$USER_CHEAP" "$PASS" "$USER_YES" "$H_YES" > "$T/dovecot/passwd"
  chmod 644 "$T/dovecot/passwd"
  cat > "$T/dovecot/dovecot.conf" <<EOF
base_dir = $T/dovecot/run
state_dir = $T/dovecot/state
instance_name = portcullis-bench-dovecot
protocols =
listen = 127.0.0.1
log_path = $T/dovecot/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
passdb {
  driver = passwd-file
  args = username_format=%u $T/dovecot/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  unix_listener $PF_QUEUE/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
  # Portcullis in relay mode asks the same Dovecot over auth-client.
  unix_listener $T/dovecot/auth-client {
    mode = 0666
  }
}
EOF
  if ! postfix -c "$PF_CONF" start > "$D/start.log" 2>&1; then
    skip postfix "postfix -c $PF_CONF start failed: $(tail -3 "$D/start.log" "$D/postfix.log" 2>/dev/null | tr '\n' ' ')"
    PF_CONF=""
    return 1
  fi
  dovecot -c "$T/dovecot/dovecot.conf" -F > "$T/dovecot/stdout.log" 2>&1 &
  DC_PID=$!; PIDS="$PIDS $DC_PID"
  local i=0
  while [ ! -S "$PF_QUEUE/private/auth" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  [ -S "$PF_QUEUE/private/auth" ] || { skip postfix "dovecot did not start: $(tail -3 "$T/dovecot/stdout.log" "$T/dovecot/dovecot.log" 2>/dev/null | tr '\n' ' ')"; return 1; }
  wait_port "$P_PF" 20 || { skip postfix "postfix does not listen on $P_PF: $(tail -3 "$D/postfix.log" | tr '\n' ' ')"; return 1; }
  say "bench: private Postfix $(postconf -h mail_version 2>/dev/null) on 127.0.0.1:$P_PF (config $PF_CONF), Dovecot $(dovecot --version 2>/dev/null | cut -d' ' -f1) SASL"
  return 0
}
if [ "${BENCH_SKIP_POSTFIX:-0}" = 1 ]; then
  skip postfix "BENCH_SKIP_POSTFIX=1"
elif start_postfix; then
  PF_OK=1
fi

# ---- portcullisd in relay mode, in front of that Postfix, Dovecot for AUTH ----
PDR_OK=0; PDR_PID=""
PDR_DIR="$T/portcullisd-relay"; PDR_CONF="$PDR_DIR/portcullis.conf"
if [ $PF_OK = 1 ] && [ -x "$PD" ] && { want relay || want authdovecot || want bigmsg; }; then
  mkdir -p "$PDR_DIR/var"
  : > "$PDR_DIR/users"
  cat > "$PDR_CONF" <<EOF
; portcullisd as the provider's front door: every message relayed to the
; private Postfix's loopback smtpd (XFORWARD), every password asked of its
; Dovecot. Limits raised as for the other instance.
[server]
hostname = portcullis.bench.test
listen = 127.0.0.1:$P_PDR
workers = auto
max_clients = 1000000
max_message_size = 25M
[tls]
cert = $T/cert.pem
key = $T/key.pem
[auth]
backend = dovecot
dovecot_socket = $T/dovecot/auth-client
failure_delay = 1s
[guard]
auth_fail_limit = 1000000
unauth_limit = 1000000
conn_rate_limit = 100000000
concurrency_limit = 1000000
[store]
backend = sqlite
path = var/portcullis.db
[delivery]
mode = relay
relay = smtp://127.0.0.1:$P_PFR
relay_tls = none
[control]
socket = var/portcullis.sock
[log]
level = warn
EOF
  pdr_start() {
    "$PD" -c "$PDR_CONF" 2>> "$PDR_DIR/portcullisd.log" &
    PDR_PID=$!; PIDS="$PIDS $PDR_PID"
    wait_port "$P_PDR" 10 "$PDR_PID" && wait_port "$P_PFR" 10
  }
  if pdr_start; then
    PDR_OK=1
    say "bench: portcullisd (relay -> 127.0.0.1:$P_PFR, Dovecot auth) pid $PDR_PID on 127.0.0.1:$P_PDR"
  else
    skip portcullisd-relay "did not start: $(tail -3 "$PDR_DIR/portcullisd.log" | tr '\n' ' ')"
  fi
fi

servers_greet="limit limitquit"
[ $PD_OK = 1 ] && servers_greet="$servers_greet portcullisd"
[ $PF_OK = 1 ] && servers_greet="$servers_greet postfix"
port_of() { case "$1" in limit) echo $P_LIMIT ;; limitquit) echo $P_LIMITQ ;; portcullisd) echo $P_PD ;; postfix) echo $P_PF ;; esac; }

START=$(date +%s)
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
say "bench: $RUNS runs x ${SECS}s per workload and server; temp dir $T"

# ---- greet: the blocked client ----------------------------------------------
if want greet; then
  for c in 64 256; do
    say "bench: greet (blocked client: connect, greeting, QUIT) at $c concurrent"
    for run in $(seq 1 "$RUNS"); do
      for s in $servers_greet; do
        run_lg "greet$c" "$s" "$run" greet -P "$(port_of $s)" -t 1 -c $c -d "$SECS" -q
        sleep 1
      done
    done
  done
fi

# ---- greettls: blocked clients on an implicit-TLS listener --------------------
# A blocked client on a /tls listener reads its 554 inside TLS, after a full
# handshake, within bounds (src/smtp/reject.h: 10 handshakes a minute per
# blocked prefix, 100 a second per worker); beyond them it is closed at
# once. Three loads, each against the plain-port figure of the same run:
# one blocked prefix (nearly all closed at once), 200 blocked addresses
# (127.0.3.1-200, held to the per-worker rate), and the plain 554 itself.
if want greettls && [ $PD_OK = 1 ]; then
  # each address a block of its own: the handshake bound is per blocked prefix
  tls_blocked=1
  for i in $(seq 1 200); do
    "$PCTL" -c "$PD_CONF" block "127.0.3.$i" --permanent --reason bench >> "$PD_DIR/block-tls.log" 2>&1 || { tls_blocked=0; break; }
  done
  if [ $tls_blocked = 1 ]; then
    say "bench: greettls (blocked clients: plain 554 vs /tls, one prefix and 200 addresses) at 64 concurrent"
    for run in $(seq 1 "$RUNS"); do
      run_lg greettls-plain portcullisd "$run" greet -P "$P_PD" -t 1 -c 64 -d "$SECS" -q; sleep 1
      run_lg greettls-one portcullisd "$run" greet --tls -P "$P_PD_TLS" -t 1 -c 64 -d "$SECS" -q; sleep 1
      run_lg greettls-many portcullisd "$run" greet --tls -P "$P_PD_TLS" -t 1 -c 64 -d "$SECS" \
        --sources 200 --source-base 127.0.3.1 -q; sleep 1
    done
  else
    skip greettls "portcullisctl block 127.0.3.x failed: $(tail -2 "$PD_DIR/block-tls.log" | tr '\n' ' ')"
  fi
fi

# ---- session: AUTH PLAIN + 10 KB message -------------------------------------
SESS_ARGS="-t 1 -c 64 -s 10240 --messages 1 --sources 4 --source-base 127.0.0.2 -p $PASS"
if want session; then
  say "bench: session (EHLO, AUTH PLAIN, MAIL, RCPT, DATA 10 KB, QUIT) at 64 concurrent"
  for run in $(seq 1 "$RUNS"); do
    if [ $PD_OK = 1 ]; then
      run_lg session-cheap portcullisd "$run" session -P $P_PD $SESS_ARGS -u $USER_CHEAP -d "$SECS" -q; sleep 1
      run_lg session-yescrypt portcullisd "$run" session -P $P_PD $SESS_ARGS -u $USER_YES -d "$SECS" -q; sleep 1
    fi
    if [ $PF_OK = 1 ]; then
      run_lg session-cheap postfix "$run" session -P $P_PF $SESS_ARGS -u $USER_CHEAP -d "$SECS" -q; sleep 1
      run_lg session-yescrypt postfix "$run" session -P $P_PF $SESS_ARGS -u $USER_YES -d "$SECS" -q; sleep 1
    fi
  done
fi
if want tls; then
  say "bench: session with STARTTLS at 64 concurrent"
  for run in $(seq 1 "$RUNS"); do
    if [ $PD_OK = 1 ]; then
      run_lg session-tls portcullisd "$run" session --starttls -P $P_PD $SESS_ARGS -u $USER_CHEAP -d "$SECS" -q; sleep 1
    fi
    if [ $PF_OK = 1 ]; then
      run_lg session-tls postfix "$run" session --starttls -P $P_PF $SESS_ARGS -u $USER_CHEAP -d "$SECS" -q; sleep 1
    fi
  done
fi

# ---- relay: the same session through Portcullis in front of Postfix ----------
# Client -> portcullisd (AUTH via Dovecot, the message relayed while the
# client waits) -> Postfix, against client -> Postfix (AUTH via the same
# Dovecot); run k of each back to back.
if want relay && [ $PDR_OK = 1 ]; then
  say "bench: relay (session via portcullisd -> Postfix vs Postfix alone, Dovecot auth on both) at 64 concurrent"
  for run in $(seq 1 "$RUNS"); do
    run_lg session-relay portcullisd-relay "$run" session -P $P_PDR $SESS_ARGS -u $USER_CHEAP -d "$SECS" -q; sleep 1
    run_lg session-relay postfix "$run" session -P $P_PF $SESS_ARGS -u $USER_CHEAP -d "$SECS" -q; sleep 1
  done
fi

# ---- authdovecot: AUTH alone, both servers asking the same Dovecot ------------
# EHLO, AUTH PLAIN (right password), QUIT: portcullisd with [auth] backend =
# dovecot against Postfix's smtpd with Dovecot SASL, the one private Dovecot
# instance and passwd-file behind both; run k of each back to back.
if want authdovecot && [ $PDR_OK = 1 ]; then
  say "bench: authdovecot (EHLO, AUTH PLAIN via the same Dovecot, QUIT) at 64 concurrent"
  AD_ARGS="-t 1 -c 64 --sources 4 --source-base 127.0.0.2 -u $USER_CHEAP -p $PASS"
  for run in $(seq 1 "$RUNS"); do
    run_lg authdovecot portcullisd-relay "$run" auth -P $P_PDR $AD_ARGS -d "$SECS" -q; sleep 1
    run_lg authdovecot postfix "$run" auth -P $P_PF $AD_ARGS -d "$SECS" -q; sleep 1
  done
fi

# ---- bigmsg: memory per session in DATA with big messages ----------------------
# BIGMSG_N sessions each send one BIGMSG_SIZE message at once (bench/bigmsg.py);
# the daemon's RSS/PSS is sampled during the transfer. Maildir mode on a fresh
# portcullisd; relay mode through the relay instance to the private Postfix.
run_bigmsg() {   # WORKLOAD SERVER PORT PID
  local log="$T/bigmsg-$1.out"
  local args="--port $3 --pid $4 -n $BIGMSG_N --size $BIGMSG_SIZE --user $USER_CHEAP --password $PASS"
  printf '%s\t%s\t%s\n' "$1" "$2" "bench/bigmsg.py ${args/--pid $4/--pid PID}" >> "$CMDS"
  timeout 300 "$PY" "$REPO/bench/bigmsg.py" $args > "$log" 2> "$log.err"
  local r
  r=$(grep '^RESULT ' "$log" | tail -1)
  if [ -z "$r" ]; then r="RESULT failed=1"; say "bench: $1: no RESULT ($(tail -1 "$log.err"))"; fi
  printf '%s\t%s\t1\t%s\n' "$1" "$2" "$r" >> "$RES"
  say "  $1 $2: $(tail -1 "$log.err")"
}
if want bigmsg; then
  say "bench: bigmsg ($BIGMSG_N sessions x $BIGMSG_SIZE bytes in DATA at once: daemon RSS/PSS)"
  if [ $PD_OK = 1 ] && pd_restart; then
    run_bigmsg bigmsg-maildir portcullisd $P_PD "$PD_PID"
  fi
  if [ $PDR_OK = 1 ]; then
    # a fresh process here too: earlier workloads' heap would hide the growth
    kill -TERM "$PDR_PID" 2>/dev/null
    i=0; while kill -0 "$PDR_PID" 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
    kill -9 "$PDR_PID" 2>/dev/null; wait "$PDR_PID" 2>/dev/null
    if pdr_start; then
      run_bigmsg bigmsg-relay portcullisd-relay $P_PDR "$PDR_PID"
    else
      skip bigmsg-relay "portcullisd (relay) did not restart: $(tail -3 "$PDR_DIR/portcullisd.log" | tr '\n' ' ')"
    fi
  fi
fi

# ---- authfail: wrong passwords (one run each; failure delays dominate) ---------
if want authfail; then
  say "bench: authfail (EHLO, AUTH PLAIN with a wrong password, QUIT) at 64 concurrent"
  AF_ARGS="-t 1 -c 64 --sources 4 --source-base 127.0.0.2 -u $USER_CHEAP -p $PASS"
  [ $PD_OK = 1 ] && run_lg authfail portcullisd 1 authfail -P $P_PD $AF_ARGS -d "$SECS" -q
  [ $PF_OK = 1 ] && run_lg authfail postfix 1 authfail -P $P_PF $AF_ARGS -d "$SECS" -q
fi

# ---- idle: connections held --------------------------------------------------
if want idle; then
  say "bench: idle connections (memory per connection, PSS)"
  if [ $PD_OK = 1 ]; then
    # One process holds every connection: the daemon needs a descriptor for
    # each (and the generator too). Without CAP_SYS_RESOURCE the hard limit
    # cannot be raised, and then it caps what can be measured here.
    hard=$(ulimit -Hn)
    cap() {
      if [ "$hard" != unlimited ] && [ "$1" -gt $((hard - 500)) ]; then
        note "$2: $1 connections wanted, capped at $((hard - 500)): RLIMIT_NOFILE's hard limit here is $hard and cannot be raised (no CAP_SYS_RESOURCE); the memory per connection is measured on what was held"
        echo $((hard - 500))
      else
        echo "$1"
      fi
    }
    n=$(cap "$IDLE_CONNS" idle-plain)
    srcs=$(( (n + 19999) / 20000 ))
    # A quarter and a half of the count first: the cost per connection is
    # flat if it is the same at every step (what lets a figure measured
    # below 100,000 speak for 100,000).
    for part in 4 2; do
      pd_restart && run_idle "idle-plain-$((100 / part))pct" portcullisd idle -P $P_PD -t 2 -c $((n / part)) -d 2 --sources "$srcs" --source-base 127.0.1.1 --ramp-timeout 90 -q
    done
    pd_restart && run_idle idle-plain portcullisd idle -P $P_PD -t 2 -c "$n" -d 5 --sources "$srcs" --source-base 127.0.1.1 --ramp-timeout 90 -q
    n=$(cap "$TLS_IDLE" idle-tls)
    pd_restart && run_idle idle-tls portcullisd idle --starttls -P $P_PD -t 2 -c "$n" -d 3 --sources 2 --source-base 127.0.2.1 --ramp-timeout 90 -q
    # 127.0.0.1 is blocked: each gets the 554 greeting and never says QUIT.
    n=$(cap "$BLOCKED_IDLE" idle-blocked)
    pd_restart && run_idle idle-blocked portcullisd idle -P $P_PD -t 2 -c "$n" -d 2 --ramp-timeout 60 -q
  fi
  if [ $PF_OK = 1 ]; then
    run_idle idle-plain postfix idle -P $P_PF -t 1 -c "$PF_IDLE" -d 3 --sources 1 --source-base 127.0.1.1 --inflight 20 --ramp-timeout 90 -q
  fi
fi

# ---- the accept-time block check -----------------------------------------------
GB_OUT="$T/guard-bench.out"
if want guard; then
  if [ -x "$GB" ]; then
    say "bench: guard-bench (1,000,000 blocks)"
    printf '%s\t%s\t%s\n' guard guard-bench "guard-bench -n 1000000" >> "$CMDS"
    "$GB" -n 1000000 > "$GB_OUT" 2>&1 || say "bench: guard-bench failed: $(tail -2 "$GB_OUT")"
    grep -v '^RESULT' "$GB_OUT" >&2
  else
    skip guard-bench "$GB is not built"
  fi
fi
SPRAY_OUT="$T/spray.out"
: > "$SPRAY_OUT"
if want spray; then
  if [ -x "$BUILD/bench/bench-spray" ] && [ -x "$PD" ]; then
    say "bench: spray (PROXY headers from $SPRAY_N fresh addresses, max_tracked $SPRAY_TRACKED)"
    printf '%s\t%s\t%s\n' spray portcullisd "bench/spray.py --build $BUILD --n ${SPRAY_N// /,} --max-tracked $SPRAY_TRACKED" >> "$CMDS"
    "$PY" "$REPO/bench/spray.py" --build "$BUILD" --n "${SPRAY_N// /,}" --max-tracked "$SPRAY_TRACKED" \
      --port "$P_SPRAY" > "$SPRAY_OUT" 2>&1 || say "bench: spray: a near-limit address lost its count or the run failed"
    grep -v '^RESULT' "$SPRAY_OUT" >&2
  else
    skip spray "bench-spray or portcullisd is not built"
  fi
fi
END=$(date +%s)
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- the report ----------------------------------------------------------------
PF_VER=$(postconf -h mail_version 2>/dev/null || echo "?")
DC_VER=$(dovecot --version 2>/dev/null | cut -d' ' -f1 || echo "?")
"$PY" "$REPO/bench/report.py" --results "$RES" --commands "$CMDS" --skipped "$SKIPS" --notes "$NOTES" \
  --guard "$GB_OUT" --spray "$SPRAY_OUT" --runs "$RUNS" --seconds "$SECS" --elapsed $((END - START)) \
  --postfix-version "$PF_VER" --dovecot-version "$DC_VER" \
  --ports "$P_LIMIT,$P_PD,$P_PF,$P_PD_TLS,$P_PDR,$P_PFR,$P_LIMITQ,$P_SPRAY" --loadavg "$LOAD_START / $LOAD_END" \
  --invocation "$(env | grep '^BENCH_' | sort | tr '\n' ' ')bench/run.sh" --out "$OUT"
rc=$?
[ "$OUT" != "-" ] && [ $rc = 0 ] && say "bench: wrote $OUT"
exit $rc
