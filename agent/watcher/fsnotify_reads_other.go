//go:build !linux

package watcher

import (
	"errors"
	"log/slog"
)

// inotifyReads exists on Linux only: elsewhere the fallback sees no reads.
type inotifyReads struct{}

func newInotifyReads(*slog.Logger) (*inotifyReads, error) {
	return nil, errors.New("reads are not reported on this OS")
}

func (*inotifyReads) watch(string, bool) error     { return nil }
func (*inotifyReads) close()                       {}
func (*inotifyReads) run(*fileRules, Sink, func()) {}
