//go:build !darwin

package config

// DefaultHealthSocket is where /healthz and /metrics answer by default (the
// packaged systemd unit's RuntimeDirectory).
const DefaultHealthSocket = "/run/tripwire/health.sock"
