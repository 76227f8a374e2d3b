#!/usr/bin/env bash
# Prepares compose/: a CA and the collector's server certificate (compose/pki),
# the collector's copy of what it needs (compose/pki/collector), and random
# secrets in compose/.env (mode 0600). Safe to run twice; run it again after
# `tripwire pki revoke` so the collector's copy of the CRL follows (the
# receiver reloads it when it changes).
set -euo pipefail
cd "$(dirname "$0")"
tripwire=${TRIPWIRE:-../bin/tripwire}
# The collector image runs as distroless "nonroot" (compose/collector.Dockerfile).
collector_uid=${TRIPWIRE_COLLECTOR_UID:-65532}
[ -x "$tripwire" ] || (cd .. && make build)
if [ ! -f pki/ca.crt ]; then
  "$tripwire" pki init --dir pki
  "$tripwire" pki issue-server --dir pki --dns collector --dns localhost --ip 127.0.0.1
fi

# The network-facing collector gets the CA certificate, its own certificate
# and key, and the CRL: never ca.key, index.json or agent keys. Its key is
# readable by the container's user only, which needs root here to chown.
as_root=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "init.sh: needs root (or sudo) to give the collector's key to uid $collector_uid" >&2; exit 1; }
  as_root=(sudo)
fi
stage=$(mktemp -d pki/.collector.XXXXXX)
trap 'rm -rf "$stage"' EXIT
cp pki/ca.crt pki/server.crt pki/server.key pki/crl.pem "$stage/"
chmod 0444 "$stage/ca.crt" "$stage/server.crt" "$stage/crl.pem"
chmod 0400 "$stage/server.key"
chmod 0550 "$stage"
"${as_root[@]}" chown -R "$collector_uid:$collector_uid" "$stage"
"${as_root[@]}" rm -rf pki/collector
"${as_root[@]}" mv "$stage" pki/collector
trap - EXIT

if [ ! -f .env ]; then
  umask 077
  {
    echo "TRIPWIRE_PG_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
    echo "TRIPWIRE_PG_READER_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
    echo "TRIPWIRE_OIDC_CLIENT_SECRET=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
  } > .env
elif ! grep -q '^TRIPWIRE_PG_READER_PASSWORD=' .env; then
  echo "TRIPWIRE_PG_READER_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" >> .env
fi
echo "compose/ ready: docker compose -f compose/docker-compose.yml up -d"
echo "agent certificates: $tripwire pki issue-agent HOST --dir compose/pki"
