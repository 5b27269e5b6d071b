#!/bin/sh
# Copies the demo users file (etc/users, tracked) to where the example
# configuration reads it (var/users, not tracked), once: `portcullisctl
# passwd` then edits the copy and the clone stays clean.
set -e
src=${1:-etc/users}
dst=${2:-var/users}
[ -f "$dst" ] && exit 0
mkdir -p "$(dirname "$dst")"
umask 077
cp "$src" "$dst"
chmod 600 "$dst"
echo "Copied the demo users to $dst (edit them with portcullisctl passwd)"
