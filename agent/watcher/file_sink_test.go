package watcher

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// fileSink collects what a file watcher reports.
type fileSink struct {
	mu     sync.Mutex
	events []*event.Event
	lost   map[string]int64
	notify chan struct{}
}

func newFileSink() *fileSink {
	return &fileSink{lost: map[string]int64{}, notify: make(chan struct{}, 1)}
}

func (s *fileSink) Trip(e *event.Event) {
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *fileSink) Lost(reason string, n int64) {
	s.mu.Lock()
	s.lost[reason] += n
	s.mu.Unlock()
}

func (s *fileSink) all() []*event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*event.Event(nil), s.events...)
}

// waitFor returns the first event matching pred, waiting up to 20 s: long
// enough for a loaded 2-core machine, and a deadline rather than a timing
// assertion.
func (s *fileSink) waitFor(t *testing.T, what string, pred func(*event.Event) bool) *event.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		for _, e := range s.all() {
			if pred(e) {
				return e
			}
		}
		select {
		case <-s.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no %s within 20s; got:\n%s", what, describe(s.all()))
			return nil
		}
	}
}

// before returns the events received before the first one matching sentinel.
func (s *fileSink) before(sentinel func(*event.Event) bool) []*event.Event {
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
		fmt.Fprintf(&b, "  %s %s", e.Name, e.File.Path)
		if e.File.RenameTo != "" {
			fmt.Fprintf(&b, " -> %s", e.File.RenameTo)
		}
		if e.Process != nil {
			fmt.Fprintf(&b, " pid=%d exe=%s cmd=%q user=%s/%s", e.Process.PID, e.Process.ExecutablePath, e.Process.CommandLine, e.Process.UserName, e.Process.UserID)
		}
		fmt.Fprintf(&b, " mech=%s missing=%v\n", e.Mechanism, e.Missing)
	}
	return b.String()
}

func startFileWatcher(t *testing.T, rules []FileRule, mech string) (Watcher, *fileSink) {
	t.Helper()
	w, err := NewFileWatcher(rules, Options{Mechanism: mech})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := newFileSink()
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
