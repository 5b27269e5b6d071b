#!/bin/sh
# Makes the self-signed demo certificate the example configuration uses.
set -e
dir=${1:-etc}
[ -f "$dir/demo-cert.pem" ] && [ -f "$dir/demo-key.pem" ] && exit 0
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
  -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$dir/demo-key.pem" -out "$dir/demo-cert.pem" 2>/dev/null
chmod 600 "$dir/demo-key.pem"
echo "Made a self-signed demo certificate in $dir/"
