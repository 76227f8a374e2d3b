//go:build !linux

package watcher

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
)

func fileEBPFProbe(string) error { return fmt.Errorf("eBPF unsupported on %s", runtime.GOOS) }

// fileEBPF never starts off Linux.
type fileEBPF struct{}

func newFileEBPF(*fileRules, string, Options, *slog.Logger) *fileEBPF { return &fileEBPF{} }

func (*fileEBPF) start(context.Context, Sink) error { return fileEBPFProbe("") }

func (*fileEBPF) rewatch() {}

func (*fileEBPF) counters() map[string]uint64 { return map[string]uint64{} }

func fanotifyProbe() error { return fmt.Errorf("fanotify unsupported on %s", runtime.GOOS) }

// fanotifyWatcher never starts off Linux; NewFileWatcher picks fsnotify.
type fanotifyWatcher struct{ replaced func() }

func newFanotifyWatcher(*fileRules, Options, *slog.Logger) *fanotifyWatcher {
	return &fanotifyWatcher{}
}

func newFanotifyNoOpens(*fileRules, Options, *slog.Logger) *fanotifyWatcher {
	return &fanotifyWatcher{}
}

func (*fanotifyWatcher) start(context.Context, Sink) error { return fanotifyProbe() }

func (*fanotifyWatcher) counters() map[string]uint64 { return map[string]uint64{} }
