package main

import (
	"testing"
	"time"

	"golang.org/x/sys/windows/svc"
)

// TestServiceStopsAfterDrain drives Execute as the service manager would:
// running, then Stop, which cancels the agent and waits for its drain before
// reporting stopped.
func TestServiceStopsAfterDrain(t *testing.T) {
	stopped := make(chan struct{})
	drained := make(chan struct{})
	s := &service{stop: func() { close(stopped) }, drained: drained}
	requests := make(chan svc.ChangeRequest)
	status := make(chan svc.Status, 4)
	done := make(chan uint32)
	go func() {
		_, code := s.Execute(nil, requests, status)
		done <- code
	}()
	if st := <-status; st.State != svc.Running || st.Accepts&svc.AcceptStop == 0 {
		t.Fatalf("first status %+v", st)
	}
	requests <- svc.ChangeRequest{Cmd: svc.Stop}
	if st := <-status; st.State != svc.StopPending {
		t.Fatalf("after Stop: %+v", st)
	}
	<-stopped
	select {
	case <-done:
		t.Fatal("Execute returned before the agent drained")
	case <-time.After(50 * time.Millisecond):
	}
	close(drained)
	if code := <-done; code != 0 {
		t.Errorf("exit code %d after a clean stop", code)
	}
}
