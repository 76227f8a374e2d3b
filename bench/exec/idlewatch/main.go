//go:build linux

// Command idlewatch starts the process and network watchers (eBPF exec
// rules, eBPF observed ports and a honeyport) with nothing tripping them,
// and after a duration prints their RSS and CPU: the idle cost of the
// watchers of issue 4, without the rest of the agent.
//
//	idlewatch -d 60s
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tripwire-sec/tripwire/agent/watcher"
	"github.com/tripwire-sec/tripwire/internal/event"
)

type sink struct{ trips, lost atomic.Int64 }

func (s *sink) Trip(*event.Event)      { s.trips.Add(1) }
func (s *sink) Lost(_ string, n int64) { s.lost.Add(n) }

func rss() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmRSS:"))
		}
	}
	return "?"
}

func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	d := flag.Duration("d", 60*time.Second, "how long to stay idle")
	flag.Parse()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := &sink{}
	var ws []watcher.Watcher
	p, err := watcher.NewProcessWatcher([]watcher.ProcessRule{
		{Name: "nc", Severity: event.SeverityCritical, Names: []string{"nc", "ncat", "socat"}, Resolve: true},
		{Name: "tools", Severity: event.SeverityWarn, Paths: []string{"/usr/bin/gdb", "/usr/bin/strace", "/usr/sbin/tcpdump"}, Resolve: true},
	}, watcher.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "idlewatch:", err)
		os.Exit(1)
	}
	ws = append(ws, p)
	n, err := watcher.NewNetworkWatchers([]watcher.NetworkRule{
		{Name: "db", Severity: event.SeverityWarn, Ports: []int{5432, 3306, 6379}, Mode: "observe"},
		{Name: "decoy", Severity: event.SeverityCritical, Ports: []int{2323, 8081}, Mode: "honeyport", Address: "127.0.0.1"},
	}, watcher.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "idlewatch:", err)
		os.Exit(1)
	}
	ws = append(ws, n...)
	for _, w := range ws {
		if err := w.Start(ctx, s); err != nil {
			fmt.Fprintln(os.Stderr, "idlewatch:", err)
			os.Exit(1)
		}
		fmt.Printf("started %s/%s\n", w.Kind(), w.Mechanism())
	}
	time.Sleep(2 * time.Second) // let start-up settle before measuring
	c0, t0 := cpu(), time.Now()
	time.Sleep(*d)
	used, wall := cpu()-c0, time.Since(t0)
	fmt.Printf("RESULT idle watchers=%d seconds=%.0f rss=%s cpu_seconds=%.3f cpu_percent_of_core=%.3f trips=%d lost=%d\n",
		len(ws), wall.Seconds(), rss(), used.Seconds(), 100*used.Seconds()/wall.Seconds(), s.trips.Load(), s.lost.Load())
}
