#!/bin/sh
# Creates the dedicated system user the service runs as.
set -e
if ! getent group tripwire >/dev/null; then
  groupadd --system tripwire
fi
if ! getent passwd tripwire >/dev/null; then
  useradd --system --gid tripwire --home-dir /var/lib/tripwire --no-create-home \
    --shell /usr/sbin/nologin --comment "TripWire agent" tripwire
fi
