package plugin

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/jackc/pgx/v5"
)

// TestTwoBackendsEveryAlert runs two plugin backends (two Datasource
// instances, as two Grafana replicas have, each with its own pool and
// LISTEN) on one database, with live subscribers on both, while two writers
// (as two collectors) commit alerts with their NOTIFYs concurrently, packed
// and one by one. Every subscriber on either backend gets every alert its
// filter matches, exactly once.
func TestTwoBackendsEveryAlert(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	second := e.secondBackend(t)

	type sub struct {
		name   string
		frames <-chan *data.Frame
		match  func(seedAlert) bool
	}
	all := func(seedAlert) bool { return true }
	var subs []sub
	for i, b := range []*env{e, second} {
		subs = append(subs,
			sub{fmt.Sprintf("backend %d all", i), b.stream(t, "alerts"), all},
			sub{fmt.Sprintf("backend %d all again", i), b.stream(t, "alerts"), all},
			sub{fmt.Sprintf("backend %d db-01 CRITICAL", i), b.stream(t, "alerts/host=db-01/severity=CRITICAL"),
				func(a seedAlert) bool { return a.host == "db-01" && a.severity == "CRITICAL" }})
		b.waitSubscribers(t, 3)
	}

	const perWriter, perTx = 300, 10
	hosts := []string{"web-01", "db-01", "mac-01"}
	sevs := []string{"INFO", "WARN", "CRITICAL"}
	var sent []seedAlert
	writers := make([][]seedAlert, 2)
	for w := range writers {
		for i := range perWriter {
			n := w*perWriter + i
			a := seedAlert{
				id:   fmt.Sprintf("0190b000-0000-7000-8000-%012d", n+1),
				host: hosts[n%3], typ: "file", event: "tripwire.file.access", rule: "two-backends",
				severity: sevs[(n/3)%3], ago: time.Minute, summary: fmt.Sprintf("two backends #%d", n), seq: int64(1000 + n),
			}
			writers[w] = append(writers[w], a)
			sent = append(sent, a)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(writers))
	for w, alerts := range writers {
		conn, err := pgx.Connect(context.Background(), e.dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		wg.Go(func() {
			for lo := 0; lo < len(alerts); lo += perTx {
				// Writer 0 packs a transaction's alerts into one NOTIFY,
				// writer 1 sends one each: the exporter does both.
				if err := e.notifyAlertsOn(conn, w == 0, alerts[lo:lo+perTx]...); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	for _, s := range subs {
		want := map[string]bool{}
		for _, a := range sent {
			if s.match(a) {
				want[a.id] = true
			}
		}
		got := map[string]int{}
		deadline := time.After(30 * time.Second)
	collect:
		for len(got) < len(want) {
			select {
			case fr := <-s.frames:
				for _, id := range frameIDs(fr) {
					got[id]++
				}
			case <-deadline:
				break collect
			}
		}
		// A duplicate may follow the last expected alert: drain briefly.
		for drained := false; !drained; {
			select {
			case fr := <-s.frames:
				for _, id := range frameIDs(fr) {
					got[id]++
				}
			case <-time.After(200 * time.Millisecond):
				drained = true
			}
		}
		missing, dup, extra := 0, 0, 0
		for id := range want {
			switch got[id] {
			case 0:
				missing++
			case 1:
			default:
				dup++
			}
		}
		for id := range got {
			if !want[id] {
				extra++
			}
		}
		if missing != 0 || dup != 0 || extra != 0 {
			t.Errorf("%s: of %d alerts, %d missing, %d twice, %d outside its filter", s.name, len(want), missing, dup, extra)
		}
	}
}

// secondBackend is another plugin backend on e's database (a second Grafana
// replica): its own Datasource, pool and LISTEN.
func (e *env) secondBackend(t *testing.T) *env {
	t.Helper()
	inst, err := NewDatasource(context.Background(), backend.DataSourceInstanceSettings{UID: "tw", JSONData: settingsJSON(e.dsn)})
	if err != nil {
		t.Fatal(err)
	}
	second := &env{ds: inst.(*Datasource), conn: e.conn, dsn: e.dsn, now: e.now}
	t.Cleanup(second.ds.Dispose)
	return second
}
