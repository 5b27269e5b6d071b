#!/bin/sh
# Makes the demo API token file the example configuration names (var/tokens,
# not tracked), once, and says where the console is and which token opens it.
set -e
dst=${1:-var/tokens}
if [ ! -f "$dst" ]; then
  mkdir -p "$(dirname "$dst")"
  umask 077
  printf 'desk:%s\n' "$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')" > "$dst"
  chmod 600 "$dst"
fi
echo "Web console: http://127.0.0.1:8025/  token: $(sed -n 's/^desk://p' "$dst" | head -n 1)  (in $dst)"
echo "Self-service page: http://127.0.0.1:8080/"
