package watcher

import (
	"os"
	"sync"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// tripSink is a real Sink that keeps what it is given, for assertions; the
// file, process and network watcher tests share it.
type tripSink struct {
	mu     sync.Mutex
	events []*event.Event
	lost   map[string]int64
	notify chan struct{}
}

func newTripSink() *tripSink {
	return &tripSink{lost: map[string]int64{}, notify: make(chan struct{}, 1)}
}

func (s *tripSink) Trip(e *event.Event) {
	s.mu.Lock()
	s.events = append(s.events, e)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *tripSink) Lost(reason string, n int64) {
	s.mu.Lock()
	s.lost[reason] += n
	s.mu.Unlock()
}

// waitFor returns the first event matching pred, waiting up to 20 s: long
// enough for a loaded 2-core machine, and a deadline rather than a timing
// assertion.
func (s *tripSink) waitFor(t *testing.T, what string, pred func(*event.Event) bool) *event.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		s.mu.Lock()
		for _, e := range s.events {
			if pred(e) {
				s.mu.Unlock()
				return e
			}
		}
		s.mu.Unlock()
		select {
		case <-s.notify:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("no event for %s within 20s; got %d events:\n%s", what, len(s.all()), describe(s.all()))
			return nil
		}
	}
}

func (s *tripSink) all() []*event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*event.Event(nil), s.events...)
}

func (s *tripSink) count(pred func(*event.Event) bool) int {
	n := 0
	for _, e := range s.all() {
		if pred(e) {
			n++
		}
	}
	return n
}

// validatedTrip checks e as the pipeline will, once it has set what the pipeline
// sets (alert id, seq, observed time).
func validatedTrip(e *event.Event) error {
	c := *e
	c.AlertID, c.Seq, c.ObservedTime = event.NewAlertID(), 1, time.Now()
	return c.Validate()
}

func needRootFor(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for real kernel mechanisms")
	}
}
