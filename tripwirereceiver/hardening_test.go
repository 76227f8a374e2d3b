package tripwirereceiver

import (
	"bytes"
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// withDuplicateKeys marshals ld and renames every key spelled like alias to
// key (same length), which gives the duplicate keys a pcommon.Map cannot
// build but the wire can carry.
func withDuplicateKeys(t *testing.T, ld plog.Logs, alias, key string) plogotlp.ExportRequest {
	t.Helper()
	require.Len(t, alias, len(key))
	raw, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	require.NoError(t, err)
	raw = bytes.ReplaceAll(raw, []byte(alias), []byte(key))
	req := plogotlp.NewExportRequest()
	require.NoError(t, req.UnmarshalProto(raw))
	return req
}

func countKey(m pcommon.Map, key string) (n int, values []string) {
	m.Range(func(k string, v pcommon.Value) bool {
		if k == key {
			n++
			values = append(values, v.AsString())
		}
		return true
	})
	return n, values
}

// Issue 12 item 7: a second host.name in the resource, or one on a record,
// must not reach any consumer (the forward pipeline passes what it gets).
func TestDuplicateAndRecordHostNamesAreDropped(t *testing.T) {
	f := start(t, newPKI(t))
	c := f.client(t, nil, f.agent(t, "web-01"))

	ld := logs(map[string][]*event.Event{"web-01": {trip("/dup1"), trip("/dup2")}})
	ld.ResourceLogs().At(0).Resource().Attributes().PutStr("host.nam2", "db-02")
	// A record that names its own host is harmless but not schema.
	ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(1).Attributes().PutStr(event.ResourceHostName, "web-01")
	req := withDuplicateKeys(t, ld, "host.nam2", event.ResourceHostName)
	n, _ := countKey(req.Logs().ResourceLogs().At(0).Resource().Attributes(), event.ResourceHostName)
	require.Equal(t, 2, n, "the request carries two host.name keys")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := c.Export(ctx, req)
	require.Error(t, err, "a resource naming another host, even second, is refused")
	require.Empty(t, received(f))

	// Two copies of the own name, and a record that repeats it: one
	// host.name on the resource, none on the record.
	ld = logs(map[string][]*event.Event{"web-01": {trip("/dup3")}})
	ld.ResourceLogs().At(0).Resource().Attributes().PutStr("host.nam2", "web-01")
	ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Attributes().PutStr(event.ResourceHostName, "WEB-01")
	_, err = c.Export(ctx, withDuplicateKeys(t, ld, "host.nam2", event.ResourceHostName))
	require.NoError(t, err)
	got := received(f)
	require.Len(t, got, 1)
	rl := got[0].ResourceLogs().At(0)
	n, vals := countKey(rl.Resource().Attributes(), event.ResourceHostName)
	require.Equal(t, 1, n, "host.name values %v", vals)
	require.Equal(t, []string{"web-01"}, vals)
	n, _ = countKey(rl.ScopeLogs().At(0).LogRecords().At(0).Attributes(), event.ResourceHostName)
	require.Zero(t, n, "record-level host.name passed on")
}

// Issue 12 item 3: the resource is rebuilt from an allowlist; an attribute
// that is not valid short text is dropped, not passed to the exporter where
// it failed the whole batch.
func TestResourceIsRebuiltFromAllowlist(t *testing.T) {
	f := start(t, newPKI(t))
	c := f.client(t, nil, f.agent(t, "web-01"))
	ld := logs(map[string][]*event.Event{"web-01": {trip("/res")}})
	attrs := ld.ResourceLogs().At(0).Resource().Attributes()
	attrs.PutStr(event.ResourceOSType, "linux\xff")
	attrs.PutStr(event.ResourceHostID, strings.Repeat("h", 300))
	attrs.PutStr(event.ResourceHostArch, "amd64")
	attrs.PutStr(event.ResourceServiceVersion, "1.0\n")
	attrs.PutStr("k8s.pod.name", "anything")
	attrs.PutInt(event.KeyClientAddress, 7)
	_, err := export(t, c, ld)
	require.NoError(t, err)
	got := received(f)
	require.Len(t, got, 1)
	keys := map[string]string{}
	got[0].ResourceLogs().At(0).Resource().Attributes().Range(func(k string, v pcommon.Value) bool {
		keys[k] = v.AsString()
		return true
	})
	require.Equal(t, "web-01", keys[event.ResourceHostName])
	require.Equal(t, "amd64", keys[event.ResourceHostArch])
	require.Equal(t, event.ServiceName, keys[event.ResourceServiceName])
	for _, k := range []string{event.ResourceOSType, event.ResourceHostID, event.ResourceServiceVersion, "k8s.pod.name", event.KeyClientAddress} {
		_, present := keys[k]
		require.False(t, present, "%s kept: %q", k, keys[k])
	}
}

// Issue 12 item 3: a record carries only its event type's attributes, each
// once, and its canonical form stays under the cap.
func TestAttributesRestrictedPerEventType(t *testing.T) {
	f := startConfigured(t, newPKI(t), func(cfg *Config) { cfg.MaxEventBytes = 16 << 10 })
	c := f.client(t, nil, f.agent(t, "web-01"))
	cases := []struct {
		reason string
		mutate func(lr plog.LogRecord)
	}{
		{"attribute_not_allowed", func(lr plog.LogRecord) {
			lr.Attributes().PutStr("tripwire.agent.watchers", strings.Repeat("w", 60<<10))
		}},
		{"attribute_not_allowed", func(lr plog.LogRecord) { lr.Attributes().PutInt("destination.port", 22) }},
		{"unknown_attribute", func(lr plog.LogRecord) { lr.Attributes().PutStr("x.padding", "y") }},
		{"oversize_event", func(lr plog.LogRecord) {
			lr.Attributes().PutStr("process.command_line", strings.Repeat("\x01", 4000))
		}},
	}
	want := map[string]int64{}
	for _, tc := range cases {
		ld := logs(map[string][]*event.Event{"": {trip("/ok"), trip("/bad")}})
		tc.mutate(ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(1))
		resp, err := export(t, c, ld)
		require.NoError(t, err, tc.reason)
		require.Equal(t, int64(1), resp.PartialSuccess().RejectedLogRecords(), tc.reason)
		require.Contains(t, resp.PartialSuccess().ErrorMessage(), "first: log record 1", tc.reason)
		want[tc.reason]++
		require.Equal(t, want[tc.reason], rejectedMetric(t, f)[tc.reason], "%s: %s", tc.reason, resp.PartialSuccess().ErrorMessage())
	}
	// The same key twice on one record.
	ld := logs(map[string][]*event.Event{"": {trip("/ok"), trip("/bad")}})
	ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(1).Attributes().PutStr("file.pat2", "/etc/hosts")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := c.Export(ctx, withDuplicateKeys(t, ld, "file.pat2", "file.path"))
	require.NoError(t, err)
	require.Equal(t, int64(1), resp.PartialSuccess().RejectedLogRecords())
	require.Equal(t, int64(1), rejectedMetric(t, f)["duplicate_attribute"])
}

// Issue 12 item 3: a request over the attribute limits is refused before it
// is decoded, and one connection cannot open unbounded concurrent streams.
func TestRequestLimits(t *testing.T) {
	g := newGatedConsumer(nil, "")
	dir := newPKI(t)
	f := startConfiguredWith(t, dir, g.consumer(t), func(cfg *Config) { cfg.MaxConcurrentStreams = 2 })
	var open sync.Once
	openGate := func() { open.Do(func() { close(g.gate) }) }
	t.Cleanup(openGate) // before the receiver's shutdown, which waits for the consumer
	c := f.client(t, nil, f.agent(t, "web-01"))

	// Many tiny attributes: what cost 34 MiB of heap per 4 MiB request.
	ld := logs(map[string][]*event.Event{"web-01": {trip("/many")}})
	many := map[string]any{}
	for i := range 200_000 {
		many["k"+itoa(i)] = int64(1)
	}
	require.NoError(t, ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().At(0).Attributes().FromRaw(many))
	_, err := export(t, c, ld)
	require.Error(t, err)
	require.Contains(t, err.Error(), "attributes")

	// Five concurrent requests while the first is being consumed: only
	// max_concurrent_streams of them reach the receiver (as the next
	// group in flight, or waiting for one).
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = export(t, c, logs(map[string][]*event.Event{"web-01": {trip("/c" + itoa(i))}}))
		}()
	}
	<-g.entered
	time.Sleep(500 * time.Millisecond)
	f.rcv.group.mu.Lock()
	pending := len(f.rcv.group.pending)
	f.rcv.group.mu.Unlock()
	openGate()
	require.LessOrEqual(t, pending, 1, "streams in the receiver beyond the one being consumed")
	wg.Wait()
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

// Issue 12 item 3: groups are bounded by bytes as well as records, so large
// records do not merge into one oversized write.
func TestGroupsAreBoundedByBytes(t *testing.T) {
	g := newGatedConsumer(nil, "")
	group := newGroupCommit(g.consumer(t))
	var open sync.Once
	t.Cleanup(func() { open.Do(func() { close(g.gate) }); group.close() })
	big := func(path string) plog.Logs {
		e := trip(path)
		e.Process.CommandLine = strings.Repeat("x", 60<<10)
		ld := logs(map[string][]*event.Event{"web-01": {e}})
		for range 79 { // 80 records of 60 KiB: about 4.7 MiB
			e := trip(path)
			e.Process.CommandLine = strings.Repeat("x", 60<<10)
			e.CopyTo(ld.ResourceLogs().At(0).ScopeLogs().At(0).LogRecords().AppendEmpty())
		}
		return ld
	}
	var wg sync.WaitGroup
	for i := range maxGroupsInFlight {
		wg.Go(func() { require.NoError(t, group.consume(t.Context(), big("/first"+itoa(i)))) })
		<-g.entered
	}
	for i := range 6 {
		wg.Add(1)
		go func() { defer wg.Done(); require.NoError(t, group.consume(t.Context(), big("/b"+itoa(i)))) }()
	}
	require.Eventually(t, func() bool {
		group.mu.Lock()
		defer group.mu.Unlock()
		return len(group.pending) == 6
	}, 10*time.Second, 5*time.Millisecond)
	open.Do(func() { close(g.gate) })
	wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, n := range g.calls {
		require.LessOrEqual(t, n, 3*80, "call %d of %v: more than 16 MiB of records", i, g.calls)
	}
	require.Equal(t, (6+maxGroupsInFlight)*80, sum(g.calls))
}

func sum(xs []int) int {
	n := 0
	for _, x := range xs {
		n += x
	}
	return n
}
