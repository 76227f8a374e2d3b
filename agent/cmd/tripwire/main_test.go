package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/tripwire-sec/tripwire/agent/health"
	"github.com/tripwire-sec/tripwire/internal/auditchain"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// TestMain makes this test binary also the tripwire command: scripts (and
// the crash test) run it as "tripwire" from $PATH, so they exercise the real
// main, flags, signals and exit codes.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"tripwire": func() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) },
	})
}

// TestScripts pins the CLI: usage text, output and exit codes.
func TestScripts(t *testing.T) {
	testscript.Run(t, testscript.Params{
		Dir: "testdata/script",
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"code":       cmdCode,
			"mkchain":    cmdMkchain,
			"freeport":   cmdFreeport,
			"waithealth": cmdWaitHealth,
			"envsubst":   cmdEnvsubst,
			"waitalert":  cmdWaitAlert,
			"waitspool":  cmdWaitSpool,
			"holdport":   cmdHoldport,
		},
		Condition: func(cond string) (bool, error) {
			if cond == "userns" {
				// An unprivileged user namespace: where bpf(2) is refused.
				return exec.Command("unshare", "--user", "--map-root-user", "true").Run() == nil, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
	})
}

// holdport VAR listens on a free loopback port until the script ends and
// sets VAR to its host:port.
func cmdHoldport(ts *testscript.TestScript, neg bool, args []string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	ts.Defer(func() { l.Close() })
	ts.Setenv(args[0], l.Addr().String())
}

// code N PROG ARGS... runs PROG and fails unless it exits with N; its
// output is kept for stdout/stderr checks.
func cmdCode(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: code N PROG [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("code: %v", err)
	}
	got := 0
	if err := ts.Exec(args[1], args[2:]...); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			ts.Fatalf("code: %v", err)
		}
		got = ee.ExitCode()
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

// mkchain FILE N [ROTATE_AT_BYTES] writes an audit log of N events and sets $HEAD to the
// SEQ:HASH of its last entry.
func cmdMkchain(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 && len(args) != 3 {
		ts.Fatalf("usage: mkchain FILE N [ROTATE_AT_BYTES]")
	}
	n, _ := strconv.Atoi(args[1])
	opts := auditchain.Options{}
	if len(args) == 3 {
		max, _ := strconv.Atoi(args[2])
		opts.MaxBytes, opts.Keep = int64(max), 1000
	}
	w, err := auditchain.Open(ts.MkAbs(args[0]), opts)
	ts.Check(err)
	for i := 0; i < n; i++ {
		now := time.Date(2026, 11, 26, 12, 0, i, 0, time.UTC)
		ts.Check(w.Append([]*event.Event{{
			Name: event.FileAccess, AlertID: event.NewAlertID(), Severity: event.SeverityCritical, Rule: "secret",
			Time: now, ObservedTime: now, Mechanism: "fanotify",
			File:    &event.File{Path: "/srv/secret"},
			Process: &event.Process{PID: int64(100 + i), CommandLine: "cat /srv/secret", UserName: "root", UserID: "0"},
		}}))
	}
	seq, hash := w.Head()
	ts.Check(w.Close())
	ts.Setenv("HEAD", fmt.Sprintf("%d:%s", seq, hash))
}

// freeport VAR sets VAR to a free loopback host:port.
func cmdFreeport(ts *testscript.TestScript, neg bool, args []string) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	addr := l.Addr().String()
	ts.Check(l.Close())
	ts.Setenv(args[0], addr)
}

// waithealth ADDR waits until an agent answers /healthz at ADDR.
func cmdWaitHealth(ts *testscript.TestScript, neg bool, args []string) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := health.Fetch(ctx, args[0])
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("no health at %s after 60 s: %v", args[0], err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// envsubst FILE expands $VARS in FILE.
func cmdEnvsubst(ts *testscript.TestScript, neg bool, args []string) {
	p := ts.MkAbs(args[0])
	b, err := os.ReadFile(p)
	ts.Check(err)
	ts.Check(os.WriteFile(p, []byte(os.Expand(string(b), ts.Getenv)), 0o600))
}

// waitspool ADDR waits until the agent at ADDR reports a spooled event: the
// start event is chained and spooled by the pipeline, after health answers.
func cmdWaitSpool(ts *testscript.TestScript, neg bool, args []string) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := health.Fetch(context.Background(), args[0])
		if err == nil && r.SpoolDepth > 0 {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("nothing spooled at %s after 60 s (%v)", args[0], err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitalert ADDR waits until the agent at ADDR reports a last alert.
func cmdWaitAlert(ts *testscript.TestScript, neg bool, args []string) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := health.Fetch(context.Background(), args[0])
		if err == nil && r.LastAlertAt != nil {
			return
		}
		if time.Now().After(deadline) {
			ts.Fatalf("no alert at %s after 60 s (%v)", args[0], err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
