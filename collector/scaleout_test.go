package collector

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"

	"github.com/tripwire-sec/tripwire/contract"
)

// secondCollector starts another collector process on s's database and PKI,
// with its own endpoint, queue and ports: a replica behind a load balancer.
func (s *stack) secondCollector(t *testing.T) (endpoint string) {
	t.Helper()
	endpoint = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	health := freePort(t)
	env := []string{
		"TRIPWIRE_PKI_DIR=" + s.pki,
		"TRIPWIRE_PG_DSN=" + s.db,
		"TRIPWIRE_QUEUE_DIR=" + t.TempDir(),
		"TRIPWIRE_ENDPOINT=" + endpoint,
		fmt.Sprintf("TRIPWIRE_HEALTH_ENDPOINT=127.0.0.1:%d", health),
		"TRIPWIRE_FORWARD_ENDPOINT=" + s.sink.addr,
		"TRIPWIRE_FORWARD_INSECURE=true",
		fmt.Sprintf("TRIPWIRE_METRICS_PORT=%d", freePort(t)),
	}
	startCollectorOn(t, s.configs, health, env...)
	return endpoint
}

// listener is one LISTEN connection on the exporter's channel, as each
// plugin backend (one per Grafana replica) holds: it records every alert id
// notified to it.
type listener struct {
	mu   sync.Mutex
	seen map[string]int
	err  error
}

func listen(t *testing.T, ctx context.Context, dsn string) *listener {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+contract.NotifyChannel); err != nil {
		t.Fatal(err)
	}
	l := &listener{seen: map[string]int{}}
	go func() {
		defer conn.Close(context.Background())
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				if ctx.Err() == nil {
					l.mu.Lock()
					l.err = err
					l.mu.Unlock()
				}
				return
			}
			ns, err := contract.DecodeNotifications([]byte(n.Payload))
			l.mu.Lock()
			if err != nil {
				l.err = err
			}
			for _, a := range ns {
				l.seen[a.AlertID]++
			}
			l.mu.Unlock()
		}
	}()
	return l
}

// TestScaleOut runs two collector processes on one PostgreSQL. Agents are
// split across them, and some switch from one to the other and back between
// batches (a load balancer re-routing, a collector restarting); batches go
// out from every agent at once. Then: every event is stored exactly once, no
// chain break is recorded (each host's chain is checked across both
// collectors under the head's row lock), and each of two LISTEN connections
// (two plugin backends) was notified of every alert exactly once.
func TestScaleOut(t *testing.T) {
	s := newStack(t)
	endpoints := []string{s.endpoint, s.secondCollector(t)}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	backends := []*listener{listen(t, ctx, s.db), listen(t, ctx, s.db)}

	const agents, batches, perBatch, rule = 12, 15, 40, "scale-out"
	sims := make([]*simAgent, agents)
	clients := make([][]plogotlp.GRPCClient, agents) // per agent, one per collector
	for i := range sims {
		sims[i] = newSimAgent(t, s, fmt.Sprintf("scale-%02d", i))
		clients[i] = []plogotlp.GRPCClient{sims[i].client, agentClient(t, s.pki, sims[i].host, endpoints[1])}
	}
	var sent sync.Map // alert id → host
	var wg sync.WaitGroup
	errs := make(chan error, agents)
	for i, a := range sims {
		wg.Go(func() {
			for b := range batches {
				// Agents 0..3 stay on the first collector, 4..7 on the
				// second; 8..11 switch at every batch.
				target := min(i/4, 1)
				if i >= 8 {
					target = (i + b) % 2
				}
				a.client = clients[i][target]
				evs := a.events(perBatch, rule)
				for _, e := range evs {
					sent.Store(e.AlertID.String(), a.host)
				}
				if err := a.send(ctx, a.logs(evs)); err != nil {
					errs <- fmt.Errorf("%s batch %d: %w", a.host, b, err)
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

	const want = agents * batches * perBatch
	pool, err := pgxpool.New(ctx, s.db)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	// Acknowledged means durable in the collector's queue, not yet stored.
	if n, err := waitRows(ctx, pool, rule, want, 100*time.Millisecond); err != nil || n != want {
		t.Fatalf("%d alert rows, want %d (%v)", n, want, err)
	}
	var rows, ids, entries, breaks, heads int
	err = pool.QueryRow(ctx, `SELECT
	    (SELECT count(*) FROM alerts WHERE rule_name = $1),
	    (SELECT count(DISTINCT alert_id) FROM alerts WHERE rule_name = $1),
	    (SELECT count(*) FROM audit_entries),
	    (SELECT count(*) FROM chain_breaks),
	    (SELECT count(*) FROM chain_heads WHERE seq = $2)`, rule, batches*perBatch).
		Scan(&rows, &ids, &entries, &breaks, &heads)
	if err != nil {
		t.Fatal(err)
	}
	if rows != want || ids != want || entries != want {
		t.Errorf("alerts %d (distinct ids %d), audit entries %d: want %d of each", rows, ids, entries, want)
	}
	if breaks != 0 {
		t.Errorf("%d chain breaks recorded, want 0", breaks)
	}
	if heads != agents {
		t.Errorf("%d chain heads at seq %d, want %d", heads, batches*perBatch, agents)
	}

	// NOTIFY is delivered at commit; give the last ones a moment.
	deadline := time.Now().Add(10 * time.Second)
	for i, l := range backends {
		for {
			l.mu.Lock()
			n, lerr := len(l.seen), l.err
			l.mu.Unlock()
			if lerr != nil {
				t.Fatalf("backend %d: %v", i, lerr)
			}
			if n >= want || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		l.mu.Lock()
		missing, dup := 0, 0
		sent.Range(func(id, _ any) bool {
			switch l.seen[id.(string)] {
			case 0:
				missing++
			case 1:
			default:
				dup++
			}
			return true
		})
		extra := len(l.seen) - (want - missing)
		l.mu.Unlock()
		if missing != 0 || dup != 0 || extra != 0 {
			t.Errorf("backend %d: %d alerts never notified, %d notified twice, %d unknown ids", i, missing, dup, extra)
		}
	}
}
