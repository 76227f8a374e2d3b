//go:build linux

package bpf

import (
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// TestLoadAndAttach loads every program into the running kernel and attaches
// it, so a change the verifier rejects fails here rather than in the agent.
func TestLoadAndAttach(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading eBPF needs root (CAP_BPF + CAP_PERFMON)")
	}
	var objs TripwireObjects
	if err := LoadTripwireObjects(&objs, nil); err != nil {
		t.Fatalf("loading: %v", err)
	}
	defer objs.Close()
	for name, p := range map[string]*ebpf.Program{
		"tw_exec":       objs.TwExec,
		"tw_sock_state": objs.TwSockState,
		"tw_tcp_reset":  objs.TwTcpReset,
	} {
		l, err := link.AttachTracing(link.TracingOptions{Program: p})
		if err != nil {
			t.Fatalf("attaching %s: %v", name, err)
		}
		l.Close()
	}
}
