package config

// DefaultHealthSocket: macOS has no /run.
const DefaultHealthSocket = "/var/run/tripwire/health.sock"
