#!/bin/sh
# Installs the Debian packages a step needs, when run as root; otherwise
# prints the exact apt-get line and stops. Usage: deps.sh build [test] [bench] [fuzz]
set -e
pkgs=""
for want in "$@"; do
  case "$want" in
    build) pkgs="$pkgs gcc pkg-config meson ninja-build libevent-dev libssl-dev libsqlite3-dev
                 libhiredis-dev libcrypt-dev libinih-dev libjansson-dev libcmocka-dev openssl" ;;
    # swaks needs its Recommends for STARTTLS and IPv6 (installs skip them).
    # prometheus: promtool checks /metrics; chromium, its driver and selenium
    # drive the web console headless.
    test)  pkgs="$pkgs python3 python3-pytest python3-dnspython swaks libnet-ssleay-perl libio-socket-inet6-perl
                 redis-server redis-tools sqlite3 procps prometheus chromium chromium-driver python3-selenium curl" ;;
    bench) pkgs="$pkgs postfix dovecot-core procps" ;;
    fuzz)  pkgs="$pkgs clang libclang-rt-14-dev" ;;
    *) echo "deps.sh: unknown set '$want'" >&2; exit 2 ;;
  esac
done
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "Missing Debian packages. Run as root:" >&2
  echo "  apt-get install -y$missing" >&2
  exit 1
fi
echo "Installing:$missing"
export DEBIAN_FRONTEND=noninteractive
# postfix asks questions on install; answer them for a local-only setup.
echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections 2>/dev/null || true
echo "postfix postfix/mailname string localhost" | debconf-set-selections 2>/dev/null || true
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
