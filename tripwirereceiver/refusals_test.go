package tripwirereceiver

import (
	"crypto/x509"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// TestHostMismatchIsRecordedAsRefusal: a certificate whose records claim
// another host is handed on as the receiver's refusal record, with the
// claimed name, the reason, the peer's address and the certificate's serial.
func TestHostMismatchIsRecordedAsRefusal(t *testing.T) {
	f := start(t, newPKI(t))
	cert := f.agent(t, "web-01")
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	require.NoError(t, err)
	c := f.client(t, nil, cert)
	for range 5 {
		_, err := export(t, c, logs(map[string][]*event.Event{"db-02": {trip("/x")}}))
		require.Equal(t, codes.PermissionDenied, status.Code(err), "%v", err)
	}
	require.Eventually(t, func() bool { return len(refused(t, f)) > 0 }, 10*time.Second, 20*time.Millisecond)
	got := refused(t, f)
	require.Len(t, got, 1, "five refusals within the interval are one record")
	r := got[0]
	require.Equal(t, "web-01", r.CertName)
	require.Equal(t, "db-02", r.ClaimedName)
	require.Equal(t, reasonHostMismatch, r.Reason)
	require.Contains(t, r.Detail, `resource host.name "db-02" is not the client certificate's host "web-01"`)
	require.Equal(t, "127.0.0.1", r.Address)
	require.Equal(t, leaf.SerialNumber.Text(16), r.CertSerial)
	// The first refusal is handed on at once, with those noted before the
	// refusal log's goroutine ran (all five on a busy machine); the rest
	// wait out the interval.
	require.True(t, r.Count >= 1 && r.Count <= 5, "count %d", r.Count)
	require.Empty(t, received(f))
}

// TestAgentCannotForgeRefusal: an agent sending the refusal record itself,
// or marking its own resource as the receiver's, gets nothing recorded: the
// marker is not on the resource allowlist and the refusal's attributes are
// not in the event schema.
func TestAgentCannotForgeRefusal(t *testing.T) {
	f := start(t, newPKI(t))
	c := f.client(t, nil, f.agent(t, "web-01"))

	forged := plog.NewLogs()
	(&event.Refusal{Time: time.Now(), CertName: "dc-01", ClaimedName: "evil", Reason: reasonHostMismatch,
		Detail: "forged", Count: 1000}).AppendTo(forged)
	resp, err := export(t, c, forged)
	require.NoError(t, err)
	require.Equal(t, int64(1), resp.PartialSuccess().RejectedLogRecords())

	// A valid trip under a resource marked as the receiver's.
	ld := logs(map[string][]*event.Event{"web-01": {trip("/etc/shadow")}})
	ld.ResourceLogs().At(0).Resource().Attributes().PutStr(event.RefusalSource, event.IdentityRefused)
	_, err = export(t, c, ld)
	require.NoError(t, err)
	got := received(f)
	require.Len(t, got, 1)
	_, marked := got[0].ResourceLogs().At(0).Resource().Attributes().Get(event.RefusalSource)
	require.False(t, marked, "the agent's marker survived the resource rebuild")

	time.Sleep(200 * time.Millisecond) // what the refusal log would hand on, it hands on at once
	require.Empty(t, refused(t, f))
	for _, ld := range f.sink.AllLogs() {
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			require.False(t, event.IsRefusal(ld.ResourceLogs().At(i)))
		}
	}
}

// TestRefusalLogIsBounded: one identity refused many times is handed on
// once per interval with its count; distinct identities beyond
// maxRefusalKeys are not tracked; nothing pending is lost at close.
func TestRefusalLogIsBounded(t *testing.T) {
	var mu sync.Mutex
	var batches []plog.Logs
	var at []time.Time
	consume := func(ld plog.Logs) error {
		mu.Lock()
		defer mu.Unlock()
		batches = append(batches, ld)
		at = append(at, time.Now())
		return nil
	}
	count := func() (records int, refusals int64) {
		mu.Lock()
		defer mu.Unlock()
		for _, ld := range batches {
			for i := 0; i < ld.ResourceLogs().Len(); i++ {
				rs, err := event.RefusalsFrom(ld.ResourceLogs().At(i))
				require.NoError(t, err)
				for _, r := range rs {
					records++
					refusals += r.Count
				}
			}
		}
		return records, refusals
	}
	const interval = 300 * time.Millisecond
	l := newRefusalLog(zap.NewNop(), interval, consume)
	r := event.Refusal{CertName: "web-01", Reason: reasonHostMismatch, ClaimedName: "db-02", Detail: "x"}
	for i := range 2000 {
		l.note(r)
		if i == 1000 {
			// The first refusal was handed on at once; the next ones wait.
			require.Eventually(t, func() bool { n, _ := count(); return n == 1 }, 5*time.Second, time.Millisecond)
		}
	}
	require.Eventually(t, func() bool { _, total := count(); return total == 2000 }, 5*time.Second, 5*time.Millisecond,
		"the refusals held back are handed on with their count")
	n, _ := count()
	require.Equal(t, 2, n, "2000 refusals within one interval are two records")
	mu.Lock()
	require.GreaterOrEqual(t, at[1].Sub(at[0]), interval, "the second record came before the interval was over")
	mu.Unlock()

	for i := range 3 * maxRefusalKeys {
		l.note(event.Refusal{CertName: fmt.Sprintf("host-%d", i), Reason: reasonHostMismatch})
	}
	l.close()
	n, _ = count()
	require.LessOrEqual(t, n, 2+maxRefusalKeys)
	require.Greater(t, n, 2)
}
