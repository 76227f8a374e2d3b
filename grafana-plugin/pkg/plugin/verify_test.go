package plugin

import (
	"context"
	"crypto/sha256"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tripwire-sec/tripwire/contract"
)

// longChain is a chain of n entries with payloads of an agent event's size
// (about 575 bytes), as stored: prev_hash, hash, payload per seq.
func longChain(n int) (prev, hash, payload [][]byte) {
	last := []byte(contract.GenesisHash)
	for seq := 1; seq <= n; seq++ {
		p := fmt.Appendf(nil, `{"event.name":"tripwire.file.access","file.path":"/srv/data/file-%06d","log.record.uid":"01a21f85-d6a9-75f0-a0ad-%012x","observed_time_unix_nano":%d,"process.command_line":"cat /srv/data/file-%06d --with-a-realistic-length-argument","process.executable.path":"/usr/bin/cat","process.parent_pid":1,"process.pid":%d,"process.user.id":1000,"process.user.name":"analyst","security_rule.name":"data","severity_text":"CRITICAL","time_unix_nano":%d,"tripwire.seq":%d,"tripwire.type":"file","tripwire.watcher.mechanism":"fanotify"}`,
			seq, seq, 1795694400001001000+seq, seq, 1000+seq%60000, 1795694400001000000+seq, seq)
		h := []byte(contract.ChainHash(string(last), p))
		prev, hash, payload = append(prev, last), append(hash, h), append(payload, p)
		last = h
	}
	return prev, hash, payload
}

// seedLongChain stores a long chain for host (which must exist) with COPY,
// and its chain head.
func (e *env) seedLongChain(t testing.TB, host string, n int) (prev, hash, payload [][]byte) {
	t.Helper()
	prev, hash, payload = longChain(n)
	var hostID string
	if err := e.conn.QueryRow(context.Background(), `SELECT host_id::text FROM hosts WHERE host_name = $1`, host).Scan(&hostID); err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1795694400, 0)
	_, err := e.conn.CopyFrom(context.Background(), pgx.Identifier{"audit_entries"},
		[]string{"host_id", "seq", "alert_id", "event_time", "prev_hash", "hash", "payload"},
		pgx.CopyFromSlice(n, func(i int) ([]any, error) {
			return []any{hostID, int64(i + 1), fmt.Sprintf("01a21f85-d6a9-75f0-a0ad-%012x", i+1), t0.Add(time.Duration(i) * time.Millisecond),
				string(prev[i]), string(hash[i]), string(payload[i])}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	e.exec(t, `INSERT INTO chain_heads (host_id, seq, hash) VALUES ($1::uuid, $2, $3)`, hostID, n, string(hash[n-1]))
	return prev, hash, payload
}

// TestVerifyChainLong verifies a chain that spans many of the verifier's
// batches: intact, then with one payload edited deep inside.
func TestVerifyChainLong(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	const n = 3000
	e.seedLongChain(t, "web-01", n)
	// Every call a full pass: the edit lies inside the verified prefix
	// (TestVerifyReusesTheVerifiedPrefix covers the cache).
	e.ds.store.verifyMaxAge = 0
	st, err := e.ds.store.VerifyChain(context.Background(), "web-01")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Intact || st.Entries != n || st.VerifiedUpTo != n || len(st.Breaks) != 0 {
		t.Fatalf("intact chain: %+v", st)
	}
	e.exec(t, `UPDATE audit_entries SET payload = replace(payload, 'analyst', 'mallory') WHERE seq = 2500`)
	st, err = e.ds.store.VerifyChain(context.Background(), "web-01")
	if err != nil {
		t.Fatal(err)
	}
	if st.Intact || st.Entries != n || st.VerifiedUpTo != 2499 || len(st.Breaks) != 1 ||
		st.Breaks[0].Kind != contract.BreakMismatch || st.Breaks[0].Seq != 2500 {
		t.Fatalf("edited payload at 2500: %+v", st)
	}
}

// BenchmarkVerifyChain re-verifies a host's 200,000 stored entries, in
// alternating rounds with bare SHA-256 of the same prev_hash ‖ payload bytes
// in memory on every core and with a bare read of the same rows (best round
// of each). PostgreSQL shares the cores and sends the rows: the read-only
// figure is the ceiling the database sets.
func BenchmarkVerifyChain(b *testing.B) {
	e := newEnv(b)
	e.ds.store.verifyMaxAge = 0 // measure full passes, not the verified-prefix cache
	e.seed(b)
	const n, rounds = 200_000, 3
	prev, _, payload := e.seedLongChain(b, "web-01", n)
	e.exec(b, `VACUUM ANALYZE audit_entries`)
	var bestVerify, bestSHA, bestRead time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for range rounds {
			start := time.Now()
			st, err := e.ds.store.VerifyChain(context.Background(), "web-01")
			if d := time.Since(start); bestVerify == 0 || d < bestVerify {
				bestVerify = d
			}
			if err != nil || !st.Intact || st.Entries != n {
				b.Fatal(err, st)
			}
			start = time.Now()
			rows, err := e.conn.Query(context.Background(), `SELECT seq, prev_hash, hash, payload FROM audit_entries ORDER BY seq`)
			if err != nil {
				b.Fatal(err)
			}
			for rows.Next() {
				rows.RawValues()
			}
			if rows.Err() != nil {
				b.Fatal(rows.Err())
			}
			if d := time.Since(start); bestRead == 0 || d < bestRead {
				bestRead = d
			}
			start = time.Now()
			hashEntries(prev, payload)
			if d := time.Since(start); bestSHA == 0 || d < bestSHA {
				bestSHA = d
			}
		}
	}
	verify, sha, read := n/bestVerify.Seconds(), n/bestSHA.Seconds(), n/bestRead.Seconds()
	b.ReportMetric(verify, "entries/s")
	b.ReportMetric(sha, "sha256-entries/s")
	b.ReportMetric(read, "read-only-rows/s")
	b.Logf("%d stored entries: VerifyChain %.2f M entries/s; bare SHA-256 of the same bytes on %d cores %.2f M entries/s (%.0f %%); "+
		"reading the same rows without checking them %.2f M rows/s (%.0f %%)",
		n, verify/1e6, runtime.GOMAXPROCS(0), sha/1e6, 100*verify/sha, read/1e6, 100*verify/read)
}

func hashEntries(prev, payload [][]byte) {
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*len(prev)/workers, (w+1)*len(prev)/workers
		wg.Go(func() {
			h := sha256.New()
			for i := lo; i < hi; i++ {
				h.Reset()
				h.Write(prev[i])
				h.Write(payload[i])
				h.Sum(nil)
			}
		})
	}
	wg.Wait()
}
