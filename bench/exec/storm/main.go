//go:build linux

// Command storm runs an exec storm: WORKERS loops that fork+exec a short
// program as fast as the machine allows for a duration, with one in EVERY
// execs running the watched binary instead. It prints the exec rate and
// writes the PIDs of the watched execs, one a line, so a watcher's capture
// can be checked against them.
//
//	storm -d 30s -workers 2 -every 1000 -watched /tmp/x/tw-storm -pids pids.txt
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	dur := flag.Duration("d", 30*time.Second, "storm duration")
	workers := flag.Int("workers", 2, "parallel exec loops")
	every := flag.Int("every", 1000, "one exec in this many runs the watched binary")
	plain := flag.String("plain", "/bin/true", "the unwatched program")
	watched := flag.String("watched", "", "the watched program")
	pidsPath := flag.String("pids", "", "file to write the PIDs of watched execs to")
	flag.Parse()
	if *watched == "" {
		fmt.Fprintln(os.Stderr, "storm: -watched is required")
		os.Exit(2)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "storm:", err)
		os.Exit(1)
	}
	attr := &syscall.ProcAttr{Files: []uintptr{devnull.Fd(), devnull.Fd(), devnull.Fd()}, Env: []string{"PATH=/usr/bin:/bin"}}

	var total, failed atomic.Int64
	var firstErr atomic.Value
	var mu sync.Mutex
	var pids []string
	deadline := time.Now().Add(*dur)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				prog := *plain
				isWatched := (i+w*(*every/2))%*every == 0
				if isWatched {
					prog = *watched
				}
				pid, err := syscall.ForkExec(prog, []string{prog, "storm", strconv.Itoa(i)}, attr)
				if err != nil {
					// Fork can fail transiently (EAGAIN) on a loaded machine.
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				var ws syscall.WaitStatus
				syscall.Wait4(pid, &ws, 0, nil)
				total.Add(1)
				if isWatched {
					mu.Lock()
					pids = append(pids, strconv.Itoa(pid))
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	// attr holds only devnull's descriptor number: keep the file alive, or
	// its finalizer closes the descriptor mid-storm (EBADF in ForkExec).
	runtime.KeepAlive(devnull)
	if *pidsPath != "" {
		if err := os.WriteFile(*pidsPath, []byte(strings.Join(pids, "\n")+"\n"), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, "storm:", err)
			os.Exit(1)
		}
	}
	fmt.Printf("execs=%d failed=%d watched=%d seconds=%.1f rate=%.0f",
		total.Load(), failed.Load(), len(pids), el.Seconds(), float64(total.Load())/el.Seconds())
	if e := firstErr.Load(); e != nil {
		fmt.Printf(" first_error=%q", e)
	}
	fmt.Println()
}
