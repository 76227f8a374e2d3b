//go:build !windows

package main

import (
	"context"
	"os/signal"
	"syscall"
)

// stopContext ends on SIGTERM (systemd, launchd) or SIGINT; release undoes it.
func stopContext() (ctx context.Context, release func()) {
	return signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
}
