#!/usr/bin/env bash
# Makes the certificates the TLS tests use, in DIR: a test CA (ca.pem) with a server certificate
# for 127.0.0.1 and "localhost" (server.pem, server.key) and a client certificate (client.pem,
# client.key); and a second, unrelated CA (other-ca.pem) with a server certificate of its own
# (other-server.pem, other-server.key). EC P-256 keys, valid one day.
#   tls_certs.sh DIR
set -euo pipefail
DIR=$1
mkdir -p "$DIR"
cd "$DIR"
ca() {  # name
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.pem" \
    -days 1 -subj "/CN=libsplit test $1" 2> /dev/null
}
leaf() {  # name ca san
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.csr" \
    -subj "/CN=$1" 2> /dev/null
  printf 'subjectAltName=%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 1 -extfile "$1.ext" \
    -out "$1.pem" 2> /dev/null
}
ca ca
ca other-ca
leaf server ca "IP:127.0.0.1,DNS:localhost"
leaf client ca "DNS:device-1"
leaf other-server other-ca "IP:127.0.0.1,DNS:localhost"
