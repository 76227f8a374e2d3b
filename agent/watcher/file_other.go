//go:build !linux

package watcher

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
)

func fanotifyProbe() error { return fmt.Errorf("fanotify unsupported on %s", runtime.GOOS) }

// fanotifyWatcher never starts off Linux; NewFileWatcher picks fsnotify.
type fanotifyWatcher struct{}

func newFanotifyWatcher(*fileRules, Options, *slog.Logger) *fanotifyWatcher {
	return &fanotifyWatcher{}
}

func (*fanotifyWatcher) start(context.Context, Sink) error { return fanotifyProbe() }

func (*fanotifyWatcher) counters() map[string]uint64 { return map[string]uint64{} }
