package auditchain

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/tripwire-sec/tripwire/contract/golden"
	"github.com/tripwire-sec/tripwire/internal/event"
)

var update = flag.Bool("update", false, "rewrite contract/golden/chain.json")

// TestGoldenChain writes three events with awkward strings and extreme
// integers through the agent's writer and pins the entries in
// contract/golden/chain.json, which the Grafana plugin's tests verify with
// their own reading of the chain. With -update it rewrites the file.
func TestGoldenChain(t *testing.T) {
	base := time.Unix(1795712400, 123456789).UTC()
	events := []*event.Event{
		{Name: event.FileAccess, AlertID: uuid.MustParse("01a21904-949b-72cf-ab95-26add05021d9"), Severity: event.SeverityCritical,
			Rule: "shadow-read", Time: base, ObservedTime: base.Add(time.Millisecond), Mechanism: "fanotify",
			Process: &event.Process{PID: 4242, PPID: 1, ExecutablePath: "/usr/bin/cat", UserName: "mallory", UserID: "1001",
				CommandLine: "cat /etc/shadow \"quoted\" back\\slash\ttab\nnl <html>&amp; é中😀 \x01\x1f"},
			File: &event.File{Path: "/etc/shadow"}},
		{Name: event.ProcessExec, AlertID: uuid.MustParse("01a21904-949b-72d2-a692-a711a6ecfd8d"), Severity: event.SeverityWarn,
			Rule: "nc-exec", Time: base.Add(time.Second), ObservedTime: base.Add(time.Second), Mechanism: "ebpf",
			Process: &event.Process{PID: 9999999, PPID: 2, ExecutablePath: "/usr/bin/nc", CommandLine: "nc -l 4444", ArgsTruncated: true,
				UserName: "root", UserID: "0", CgroupID: 1<<63 - 1, Ancestry: "2:/bin/bash <- 1:/sbin/init"}},
		{Name: event.NetworkConnection, AlertID: uuid.MustParse("01a21904-949b-72d3-90ea-659cc3831571"), Severity: event.SeverityInfo,
			Rule: "ssh-observe", Time: base.Add(2 * time.Second), ObservedTime: base.Add(2 * time.Second), Mechanism: "honeyport",
			Network: &event.Network{SourceAddress: "2001:db8::1", SourcePort: 51234, DestinationPort: 2222, Transport: "tcp",
				Type: "ipv6", Mode: "honeyport", FirstBytes: `"SSH-2.0\r\n"`}},
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	w, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append(events); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var got []golden.Entry
	err = ReadEntries(path, 1, func(e Entry) error {
		got = append(got, golden.Entry{Canonical: string(e.Payload), PrevHash: e.PrevHash, Hash: e.Hash})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	const file = "../../contract/golden/chain.json"
	if *update {
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("%s is stale (run this test with -update and commit it):\n got %s\nwant %s", file, b, want)
	}
}
