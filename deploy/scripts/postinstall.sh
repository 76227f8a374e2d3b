#!/bin/sh
set -e
chown -R tripwire:tripwire /var/lib/tripwire
chgrp tripwire /etc/tripwire/config.yaml /etc/tripwire/config.example.yaml
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
echo "tripwire installed: edit /etc/tripwire/config.yaml, then: systemctl enable --now tripwire"
