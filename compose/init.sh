#!/usr/bin/env bash
# Prepares compose/: a CA and the collector's server certificate (compose/pki)
# and random secrets in compose/.env (mode 0600). Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")"
tripwire=${TRIPWIRE:-../bin/tripwire}
[ -x "$tripwire" ] || (cd .. && make build)
if [ ! -f pki/ca.crt ]; then
  "$tripwire" pki init --dir pki
  "$tripwire" pki issue-server --dir pki --dns collector --dns localhost --ip 127.0.0.1
fi
if [ ! -f .env ]; then
  umask 077
  {
    echo "TRIPWIRE_PG_PASSWORD=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
    echo "TRIPWIRE_OIDC_CLIENT_SECRET=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
  } > .env
fi
echo "compose/ ready: docker-compose -f compose/docker-compose.yml up -d"
echo "agent certificates: $tripwire pki issue-agent HOST --dir compose/pki"
