package watcher

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// tripSink is a real Sink that keeps what it is given, for assertions.
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

// waitFor polls until some event satisfies pred, or fails after a generous
// deadline (the machine is shared and noisy).
func (s *tripSink) waitFor(t *testing.T, what string, pred func(*event.Event) bool) *event.Event {
	t.Helper()
	deadline := time.After(15 * time.Second)
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
			t.Fatalf("no event for %s within 15s; got %d events: %s", what, len(s.all()), describeTrips(s.all()))
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

func describeTrips(evs []*event.Event) string {
	var sb strings.Builder
	for _, e := range evs {
		sb.WriteString("\n  ")
		sb.WriteString(string(e.Name) + " rule=" + e.Rule)
		if e.Process != nil {
			sb.WriteString(" pid=" + strconv.FormatInt(e.Process.PID, 10) + " exe=" + e.Process.ExecutablePath + " cmd=" + e.Process.CommandLine)
		}
		if e.Network != nil {
			sb.WriteString(" src=" + e.Network.SourceAddress + ":" + strconv.FormatInt(e.Network.SourcePort, 10) + " dport=" + strconv.FormatInt(e.Network.DestinationPort, 10))
		}
	}
	return sb.String()
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
