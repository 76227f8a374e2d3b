package event

import (
	"testing"

	"go.opentelemetry.io/collector/pdata/plog"
)

// FuzzFromLogRecord feeds arbitrary OTLP/protobuf bytes to the decoder the
// collector runs on every record: it never panics, and an event it accepts
// and validates survives a second round trip unchanged.
func FuzzFromLogRecord(f *testing.F) {
	seed := plog.NewLogs()
	lr := seed.ResourceLogs().AppendEmpty().ScopeLogs().AppendEmpty().LogRecords().AppendEmpty()
	(&Event{Name: FileAccess, Rule: "r", Severity: SeverityInfo, AlertID: NewAlertID(), Seq: 1,
		File: &File{Path: "/etc/passwd"}, Process: &Process{PID: 1}}).CopyTo(lr)
	b, _ := (&plog.ProtoMarshaler{}).MarshalLogs(seed)
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		logs, err := (&plog.ProtoUnmarshaler{}).UnmarshalLogs(data)
		if err != nil {
			return
		}
		for i := 0; i < logs.ResourceLogs().Len(); i++ {
			sls := logs.ResourceLogs().At(i).ScopeLogs()
			for j := 0; j < sls.Len(); j++ {
				lrs := sls.At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					e, err := FromLogRecord(lrs.At(k))
					if err != nil || e.Validate() != nil {
						continue
					}
					again := plog.NewLogRecord()
					e.CopyTo(again)
					e2, err := FromLogRecord(again)
					if err != nil {
						t.Fatalf("re-decoding a valid event: %v", err)
					}
					if string(e2.Canonical()) != string(e.Canonical()) {
						t.Fatalf("canonical changed across a round trip")
					}
				}
			}
		}
	})
}

// FuzzParseCanonical: arbitrary payloads never panic the parser, and what it
// accepts re-encodes to bytes that parse to the same canonical form.
func FuzzParseCanonical(f *testing.F) {
	f.Add([]byte(`{"event.name":"tripwire.file.access","file.path":"/etc/shadow","process.pid":1,"severity_text":"WARN","time_unix_nano":5}`))
	f.Add([]byte(`{"tripwire.seq":-1}`))
	f.Add([]byte(`{"process.command_line":"\u0000\ud800"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := ParseCanonical(data)
		if err != nil {
			return
		}
		c := e.Canonical()
		e2, err := ParseCanonical(c)
		if err != nil {
			t.Fatalf("canonical output does not parse: %v\n%s", err, c)
		}
		if string(e2.Canonical()) != string(c) {
			t.Fatalf("canonical not a fixed point:\n%s\n%s", c, e2.Canonical())
		}
	})
}
