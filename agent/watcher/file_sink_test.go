package watcher

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// before returns the events received before the first one matching sentinel.
func (s *tripSink) before(sentinel func(*event.Event) bool) []*event.Event {
	all := s.all()
	for i, e := range all {
		if sentinel(e) {
			return all[:i]
		}
	}
	return all
}

func describe(es []*event.Event) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "  %s rule=%s", e.Name, e.Rule)
		if e.File != nil {
			fmt.Fprintf(&b, " %s", e.File.Path)
			if e.File.RenameTo != "" {
				fmt.Fprintf(&b, " -> %s", e.File.RenameTo)
			}
		}
		if e.Process != nil {
			fmt.Fprintf(&b, " pid=%d exe=%s cmd=%q user=%s/%s", e.Process.PID, e.Process.ExecutablePath, e.Process.CommandLine, e.Process.UserName, e.Process.UserID)
		}
		if e.Network != nil {
			fmt.Fprintf(&b, " src=%s:%d dport=%d", e.Network.SourceAddress, e.Network.SourcePort, e.Network.DestinationPort)
		}
		fmt.Fprintf(&b, " mech=%s missing=%v\n", e.Mechanism, e.Missing)
	}
	return b.String()
}

func startFileWatcher(t *testing.T, rules []FileRule, mech string) (Watcher, *tripSink) {
	t.Helper()
	w, err := NewFileWatcher(rules, Options{Mechanism: mech})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := newTripSink()
	if err := w.Start(ctx, s); err != nil {
		t.Fatal(err)
	}
	return w, s
}

func on(name event.Name, path string) func(*event.Event) bool {
	return func(e *event.Event) bool { return e.Name == name && e.File != nil && e.File.Path == path }
}

// sharedDir is a temp dir other users can traverse, for actors that are not
// root.
func sharedDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "tripwire-shared-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
