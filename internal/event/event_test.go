package event

import (
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/plog"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// randomEvent builds a valid event of a random type with random optional
// fields, including strings that need escaping.
func randomEvent(r *rand.Rand) *Event {
	names := []Name{FileAccess, FileModify, FileRename, ProcessExec, NetworkConnection, NetworkScan, AgentLoss, AgentCertExpiry, AgentStart}
	s := func() string {
		const alphabet = "ab/ \"\\\t\n\x01é漢字€-_."
		runes := []rune(alphabet)
		n := 1 + r.IntN(20)
		var b strings.Builder
		for i := 0; i < n; i++ {
			b.WriteRune(runes[r.IntN(len(runes))])
		}
		return b.String()
	}
	n := func() int64 { return 1 + r.Int64N(1<<40) }
	t := time.Unix(0, 1+r.Int64N(1<<62)).UTC()
	e := &Event{
		Name: names[r.IntN(len(names))], AlertID: NewAlertID(), Seq: uint64(n()),
		Severity: Severity(1 + r.IntN(3)), Rule: s(), Time: t, ObservedTime: t.Add(time.Duration(r.IntN(1e6))),
		Mechanism: s(),
	}
	if r.IntN(2) == 0 {
		e.Missing = []string{KeyProcessPID, KeyProcessUserName}
	}
	if r.IntN(2) == 0 {
		e.Count = n()
	}
	if r.IntN(3) > 0 || e.Type() == TypeProcess {
		e.Process = &Process{PID: n(), PPID: n(), ExecutablePath: "/usr/bin/" + s(), CommandLine: s(),
			ArgsTruncated: r.IntN(2) == 0, UserName: s(), UserID: "0", CgroupID: n(), Ancestry: s()}
	}
	switch e.Type() {
	case TypeFile:
		e.File = &File{Path: "/etc/" + s()}
		if e.Name == FileRename {
			e.File.RenameTo = "/tmp/" + s()
		}
	case TypeNetwork:
		e.Network = &Network{SourceAddress: "2001:db8::1", SourcePort: n() % 65536, DestinationAddress: "::1",
			DestinationPort: 1 + n()%65535, Transport: "tcp", Type: "ipv6", Mode: "observe", FirstBytes: s()}
	case TypeAgent:
		e.Rule = ""
		e.Agent = &Agent{LossCount: n(), LossReason: LossSpoolShed, LossFirstSeq: n(), LossLastSeq: n(),
			Watchers: "file=fanotify", Status: StatusDegraded, CertNotAfter: time.Unix(r.Int64N(1<<33), 0).UTC(), Unserved: s()}
	}
	if r.IntN(2) == 0 {
		e.PrevHash = strings.Repeat("0", 64)
		e.Hash = strings.Repeat("ab", 32)
	}
	return e
}

func TestRoundTripPlog(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 2000; i++ {
		want := randomEvent(r)
		if err := want.Validate(); err != nil {
			t.Fatalf("generator made an invalid event: %v", err)
		}
		lr := plog.NewLogRecord()
		want.CopyTo(lr)
		got, err := FromLogRecord(lr)
		if err != nil {
			t.Fatalf("decoding: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("round trip changed the event:\n got %+v\nwant %+v", got, want)
		}
		if lr.EventName() != string(want.Name) {
			t.Fatalf("EventName %q", lr.EventName())
		}
	}
}

func TestRoundTripCanonical(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 2000; i++ {
		e := randomEvent(r)
		c := e.Canonical()
		got, err := ParseCanonical(c)
		if err != nil {
			t.Fatalf("parsing %s: %v", c, err)
		}
		// The audit hashes are not part of the canonical form.
		want := *e
		want.PrevHash, want.Hash = "", ""
		if !reflect.DeepEqual(got, &want) {
			t.Fatalf("canonical round trip changed the event:\n got %+v\nwant %+v", got, &want)
		}
		if again := got.Canonical(); string(again) != string(c) {
			t.Fatalf("canonical not stable:\n%s\n%s", c, again)
		}
	}
}

// TestCanonicalGolden pins the exact bytes: changing them breaks every
// existing audit chain, so this test must only change with a new format.
func TestCanonicalGolden(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 0, 5, time.UTC)
	e := &Event{
		Name: FileAccess, Severity: SeverityCritical, Rule: "shadow", Seq: 42,
		Time: at, ObservedTime: at.Add(time.Millisecond), Mechanism: "fanotify",
		Process: &Process{PID: 4242, PPID: 1, ExecutablePath: "/usr/bin/cat", CommandLine: "cat \"/etc/shadow\"\t\x01", UserName: "root", UserID: "0"},
		File:    &File{Path: "/etc/shadow"},
		Hash:    strings.Repeat("f", 64),
	}
	e.AlertID[6] = 0x70 // a fixed, not random, id
	e.Missing = []string{KeyProcessCgroupID, KeyProcessParentPID}
	const want = `{"event.name":"tripwire.file.access","file.path":"/etc/shadow","log.record.uid":"00000000-0000-7000-0000-000000000000",` +
		`"observed_time_unix_nano":1795694400001000005,"process.command_line":"cat \"/etc/shadow\"\u0009\u0001","process.executable.path":"/usr/bin/cat",` +
		`"process.parent_pid":1,"process.pid":4242,"process.user.id":0,"process.user.name":"root","security_rule.name":"shadow",` +
		`"severity_text":"CRITICAL","time_unix_nano":1795694400000000005,"tripwire.missing_fields":["tripwire.process.cgroup_id","process.parent_pid"],` +
		`"tripwire.seq":42,"tripwire.type":"file","tripwire.watcher.mechanism":"fanotify"}`
	if got := string(e.Canonical()); got != want {
		t.Fatalf("canonical bytes changed:\n got %s\nwant %s", got, want)
	}
}

func TestValidate(t *testing.T) {
	valid := func() *Event {
		now := time.Now()
		return &Event{Name: FileAccess, AlertID: NewAlertID(), Seq: 1, Severity: SeverityWarn, Rule: "r",
			Time: now, ObservedTime: now, File: &File{Path: "/etc/passwd"}}
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("valid event rejected: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Event)
		want   error
		key    string
	}{
		{"unknown name", func(e *Event) { e.Name = "tripwire.file.eat" }, ErrUnknownName, "tripwire.file.eat"},
		{"no severity", func(e *Event) { e.Severity = 0 }, ErrBadSeverity, ""},
		{"bad severity", func(e *Event) { e.Severity = 9 }, ErrBadSeverity, ""},
		{"no alert id", func(e *Event) { e.AlertID = [16]byte{} }, ErrMissingField, KeyAlertID},
		{"alert id not v7", func(e *Event) { e.AlertID[6] = 0x40 }, ErrBadValue, KeyAlertID},
		{"no seq", func(e *Event) { e.Seq = 0 }, ErrMissingField, KeySeq},
		{"no time", func(e *Event) { e.Time = time.Time{} }, ErrMissingField, "time"},
		{"no path", func(e *Event) { e.File = nil }, ErrMissingField, "file.path"},
		{"no rule", func(e *Event) { e.Rule = "" }, ErrMissingField, KeyRule},
		{"oversize path", func(e *Event) { e.File.Path = strings.Repeat("a", 5000) }, ErrOversize, "file.path"},
		{"invalid utf-8", func(e *Event) { e.Process = &Process{CommandLine: "cat \xff"} }, ErrInvalidUTF8, "process.command_line"},
		{"negative pid", func(e *Event) { e.Process = &Process{PID: -1} }, ErrBadValue, "process.pid"},
		{"bad hash", func(e *Event) { e.Hash = "XYZ" }, ErrBadValue, "audit"},
		{"unknown missing key", func(e *Event) { e.Missing = []string{"nope"} }, ErrBadValue, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := valid()
			tt.mutate(e)
			err := e.Validate()
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.key) {
				t.Fatalf("got %v, want %v naming %q", err, tt.want, tt.key)
			}
		})
	}
	hb := &Event{Name: AgentHeartbeat, AlertID: NewAlertID(), Severity: SeverityInfo, Time: time.Now(), ObservedTime: time.Now()}
	if err := hb.Validate(); err != nil {
		t.Fatalf("heartbeats need no seq: %v", err)
	}
}

func TestFromLogRecordRejectsWrongKinds(t *testing.T) {
	lr := plog.NewLogRecord()
	lr.Attributes().PutStr("process.pid", "1234")
	if _, err := FromLogRecord(lr); !errors.Is(err, ErrWrongKind) || !strings.Contains(err.Error(), "process.pid") {
		t.Fatalf("got %v", err)
	}
	lr = plog.NewLogRecord()
	lr.SetSeverityText("CRITICAL")
	lr.SetSeverityNumber(plog.SeverityNumberInfo)
	if _, err := FromLogRecord(lr); !errors.Is(err, ErrBadSeverity) {
		t.Fatalf("mismatched severity number accepted: %v", err)
	}
	lr = plog.NewLogRecord()
	lr.Attributes().PutStr(KeyType, "process")
	lr.SetEventName(string(FileAccess))
	if _, err := FromLogRecord(lr); err == nil {
		t.Fatal("tripwire.type disagreeing with the name accepted")
	}
}

func BenchmarkRoundTrip(b *testing.B) {
	e := randomEvent(rand.New(rand.NewPCG(7, 8)))
	lr := plog.NewLogRecord()
	b.ReportAllocs()
	for b.Loop() {
		e.CopyTo(lr)
		if _, err := FromLogRecord(lr); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonical(b *testing.B) {
	e := randomEvent(rand.New(rand.NewPCG(7, 8)))
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendCanonical(buf[:0])
	}
}

// The contract module cannot import semconv (it has no dependencies); the
// names it holds that are semantic conventions are checked against it here.
func TestContractKeysAreSemanticConventions(t *testing.T) {
	for got, want := range map[string]attribute.Key{
		ResourceHostName: semconv.HostNameKey, ResourceHostID: semconv.HostIDKey, ResourceOSType: semconv.OSTypeKey,
		ResourceHostArch: semconv.HostArchKey, ResourceServiceName: semconv.ServiceNameKey,
		ResourceServiceVersion: semconv.ServiceVersionKey, KeyClientAddress: semconv.ClientAddressKey,
		ResourceClientCertNotAfter: semconv.TLSClientNotAfterKey,
	} {
		if got != string(want) {
			t.Errorf("contract says %q, semconv %q", got, want)
		}
	}
}

// benchTrip is a file trip as an agent sends it: what the collector decodes
// and validates, twice (receiver and exporter), for every event.
func benchTrip() *Event {
	now := time.Now().UTC()
	e := &Event{Name: FileAccess, AlertID: NewAlertID(), Seq: 4242, Severity: SeverityWarn, Rule: "decoy-secrets",
		Time: now, ObservedTime: now, Mechanism: "fanotify", File: &File{Path: "/srv/data/secrets.txt"},
		Process: &Process{PID: 4242, PPID: 1, UserName: "www-data", UserID: "33", ExecutablePath: "/usr/bin/cat",
			CommandLine: "cat /srv/data/secrets.txt"}, PrevHash: strings.Repeat("ab", 32)}
	e.Hash = ChainHash(e.PrevHash, e.Canonical())
	return e
}

func BenchmarkValidate(b *testing.B) {
	e := benchTrip()
	b.ReportAllocs()
	for b.Loop() {
		if err := e.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeValidate(b *testing.B) {
	lr := plog.NewLogRecord()
	benchTrip().CopyTo(lr)
	b.ReportAllocs()
	for b.Loop() {
		e, err := FromLogRecord(lr)
		if err == nil {
			err = e.Validate()
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonicalTrip(b *testing.B) {
	e := benchTrip()
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = e.AppendCanonical(buf[:0])
	}
}

// Every field's part is the one its setter fills: each and AppendCanonical
// skip a field whose part the event lacks, so a field filed under the wrong
// part would silently drop out of the canonical form.
func TestFieldParts(t *testing.T) {
	for i := range fields {
		f := &fields[i]
		if f.key == KeyType {
			continue // derived from the name; its setter only checks
		}
		e := &Event{Name: FileAccess}
		v := value{kind: f.kind, s: "1", i: 1, b: true, ss: []string{"x"}}
		if f.key == KeyAlertID {
			v.s = NewAlertID().String()
		}
		if f.key == KeyCertNotAfter {
			v.s = "2030-01-01T00:00:00Z"
		}
		if err := f.set(e, v); err != nil {
			t.Fatalf("%s: %v", f.key, err)
		}
		has := e.parts()
		for p := partCore + 1; p < parts; p++ {
			if has[p] != (p == f.part) {
				t.Errorf("%s is filed under part %d, but setting it gives the event parts %v", f.key, f.part, has)
			}
		}
		if _, present := f.get(e); !present {
			t.Errorf("%s: set, then not present", f.key)
		}
	}
}
