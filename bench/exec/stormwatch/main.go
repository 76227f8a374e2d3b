//go:build linux

// Command stormwatch runs the process watcher alone with one name rule, for
// the exec-storm benchmark: it prints "ready" once the watch is in place,
// and on SIGTERM or SIGINT prints the PIDs it caught (to -pids), the
// watcher's counters, losses and its own CPU use while it ran.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tripwire-sec/tripwire/agent/watcher"
	"github.com/tripwire-sec/tripwire/internal/event"
)

type sink struct {
	mu   sync.Mutex
	pids []string
	lost map[string]int64
}

func (s *sink) Trip(e *event.Event) {
	s.mu.Lock()
	s.pids = append(s.pids, strconv.FormatInt(e.Process.PID, 10))
	s.mu.Unlock()
}

func (s *sink) Lost(reason string, n int64) {
	s.mu.Lock()
	s.lost[reason] += n
	s.mu.Unlock()
}

func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	name := flag.String("name", "tw-storm", "watched executable name")
	mech := flag.String("mechanism", "", "force a mechanism (ebpf, fanotify_exec, proc_connector)")
	pidsPath := flag.String("pids", "", "file to write caught PIDs to")
	flag.Parse()

	w, err := watcher.NewProcessWatcher([]watcher.ProcessRule{{Name: "storm", Severity: event.SeverityWarn, Names: []string{*name}}},
		watcher.Options{Mechanism: *mech})
	if err != nil {
		fmt.Fprintln(os.Stderr, "stormwatch:", err)
		os.Exit(1)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &sink{lost: map[string]int64{}}
	if err := w.Start(ctx, s); err != nil {
		fmt.Fprintln(os.Stderr, "stormwatch:", err)
		os.Exit(1)
	}
	cpu0, t0 := cpu(), time.Now()
	fmt.Println("ready", w.Mechanism())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	cpuUsed, wall := cpu()-cpu0, time.Since(t0)
	var counters map[string]uint64
	if c, ok := w.(watcher.Counters); ok {
		counters = c.Counters()
	}
	cancel()
	time.Sleep(1500 * time.Millisecond) // final counter read and drain
	if c, ok := w.(watcher.Counters); ok {
		counters = c.Counters()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sort.Strings(s.pids)
	if *pidsPath != "" {
		os.WriteFile(*pidsPath, []byte(strings.Join(s.pids, "\n")+"\n"), 0o600)
	}
	fmt.Printf("caught=%d cpu_seconds=%.2f wall_seconds=%.1f cpu_percent_of_core=%.2f counters=%v lost=%v\n",
		len(s.pids), cpuUsed.Seconds(), wall.Seconds(), 100*cpuUsed.Seconds()/wall.Seconds(), counters, s.lost)
}
