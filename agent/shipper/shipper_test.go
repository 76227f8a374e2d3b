package shipper

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// checkDelivered asserts that the collector received exactly want, each
// once, in seq order, and that each decodes to the same event with the
// agent's Resource and a hash the collector can recompute.
func checkDelivered(t *testing.T, got []received, want []*event.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("collector received %d trips, want %d", len(got), len(want))
	}
	for i, r := range got {
		w := want[i]
		if r.ev.Seq != w.Seq {
			t.Fatalf("trip %d: seq %d, want %d (out of order or duplicated)", i, r.ev.Seq, w.Seq)
		}
		if r.ev.Name != w.Name || r.ev.AlertID != w.AlertID {
			t.Fatalf("seq %d: got %s %s, want %s %s", w.Seq, r.ev.Name, r.ev.AlertID, w.Name, w.AlertID)
		}
		if !bytes.Equal(r.ev.Canonical(), w.Canonical()) {
			t.Fatalf("seq %d: attributes differ:\n got %s\nwant %s", w.Seq, r.ev.Canonical(), w.Canonical())
		}
		if r.ev.PrevHash != w.PrevHash || r.ev.Hash != w.Hash {
			t.Fatalf("seq %d: hashes differ", w.Seq)
		}
		if h := event.ChainHash(r.ev.PrevHash, r.ev.Canonical()); h != r.ev.Hash {
			t.Fatalf("seq %d: recomputed hash %s, carried %s", w.Seq, h, r.ev.Hash)
		}
	}
}

func TestShipDeliversEventsWithResource(t *testing.T) {
	p := newTestPKI(t, 0)
	c := startCollector(t, p)
	sp := openSpool(t)

	ch := newChain()
	evs := ch.next(3, event.SeverityCritical)
	// One of each kind, with every optional part filled somewhere.
	evs = append(evs, withChain(ch, &event.Event{
		Name: event.ProcessExec, Severity: event.SeverityWarn, Rule: "netcat", Mechanism: "ebpf",
		Process: &event.Process{PID: 77, PPID: 76, ExecutablePath: "/usr/bin/nc.openbsd", CommandLine: "nc -l 4444",
			ArgsTruncated: true, UserName: "alice", UserID: "1000", CgroupID: 12, Ancestry: "76:/bin/bash <- 1:/sbin/init"},
	}), withChain(ch, &event.Event{
		Name: event.NetworkConnection, Severity: event.SeverityInfo, Rule: "honey-ssh", Mechanism: "honeyport",
		Missing: []string{"process.pid"},
		Network: &event.Network{SourceAddress: "::1", SourcePort: 50123, DestinationAddress: "::1", DestinationPort: 2222,
			Transport: "tcp", Type: "ipv6", Mode: "honeyport", FirstBytes: `"SSH-2.0-x\r\n"`},
	}), withChain(ch, &event.Event{
		Name: event.AgentLoss, Severity: event.SeverityWarn,
		Agent: &event.Agent{LossCount: 3, LossReason: event.LossSpoolShed, LossFirstSeq: 1, LossLastSeq: 3},
	}))
	put(t, sp, evs)

	reg := prometheus.NewRegistry()
	runShipper(t, testConfig(p, c), sp, reg)
	waitFor(t, "all events at the collector", func() bool { return len(c.trips()) >= len(evs) })
	waitEmpty(t, sp, c)

	got := c.trips()
	// The spool hands out loss events first, so the collector learns of a
	// gap before it sees it.
	wantOrder := append([]*event.Event{evs[5]}, evs[:5]...)
	checkDelivered(t, got, wantOrder)
	for _, r := range got {
		for k, v := range map[string]string{
			event.ResourceHostName: "host-a", event.ResourceHostID: "4f1c0e2a", event.ResourceOSType: "linux",
			event.ResourceHostArch: "amd64", event.ResourceServiceName: event.ServiceName, event.ResourceServiceVersion: "0.1.0-test",
		} {
			if r.resource[k] != v {
				t.Errorf("seq %d: resource %s = %q, want %q", r.ev.Seq, k, r.resource[k], v)
			}
		}
		if err := r.ev.Validate(); err != nil {
			t.Errorf("seq %d: received event does not validate: %v", r.ev.Seq, err)
		}
	}
	if n := testutil.ToFloat64(mustGet(t, reg, "tripwire_shipper_sent_total")); n != float64(len(evs)) {
		t.Errorf("sent_total = %v, want %d", n, len(evs))
	}
}

func withChain(c *chain, e *event.Event) *event.Event {
	c.seq++
	now := time.Now().UTC()
	e.AlertID, e.Seq, e.Time, e.ObservedTime = event.NewAlertID(), c.seq, now, now
	e.PrevHash = c.prev
	e.Hash = event.ChainHash(c.prev, e.Canonical())
	c.prev = e.Hash
	return e
}

// TestDeleteOnlyAfterAck: while the collector answers Unavailable nothing
// leaves the spool; once it accepts, everything arrives once, in order.
func TestDeleteOnlyAfterAck(t *testing.T) {
	p := newTestPKI(t, 0)
	c := startCollector(t, p)
	var refused int
	c.setRefuse(func([]*event.Event) error {
		refused++
		return status.Error(codes.Unavailable, "collector warming up")
	})
	sp := openSpool(t)
	evs := newChain().next(700, event.SeverityWarn) // more than one batch
	put(t, sp, evs)

	reg := prometheus.NewRegistry()
	runShipper(t, testConfig(p, c), sp, reg)
	failed := mustGet(t, reg, "tripwire_shipper_failed_total")
	waitFor(t, "several refused exports", func() bool { return testutil.ToFloat64(failed) >= 3 })
	if d := spooled(t, sp); d != len(evs) {
		t.Fatalf("spool depth %d while the collector refuses everything, want %d", d, len(evs))
	}
	if n := len(c.trips()); n != 0 {
		t.Fatalf("collector stored %d trips while refusing", n)
	}
	age := mustGet(t, reg, "tripwire_shipper_queue_age_seconds")
	if testutil.ToFloat64(age) <= 0 {
		t.Fatal("queue_age_seconds is 0 while events wait")
	}

	c.setRefuse(nil)
	waitEmpty(t, sp, c)
	checkDelivered(t, c.trips(), evs)
	if v := testutil.ToFloat64(age); v != 0 {
		t.Fatalf("queue_age_seconds = %v with an empty spool", v)
	}
}

// TestReconnectAfterCollectorRestart: the collector goes away mid-stream and
// comes back on the same address; the shipper backs off, reconnects and
// delivers everything exactly once.
func TestReconnectAfterCollectorRestart(t *testing.T) {
	p := newTestPKI(t, 0)
	c := startCollector(t, p)
	sp := openSpool(t)
	reg := prometheus.NewRegistry()
	runShipper(t, testConfig(p, c), sp, reg)

	ch := newChain()
	first := ch.next(100, event.SeverityInfo)
	put(t, sp, first)
	// Acknowledged, not just received: a collector stopped between storing
	// a batch and answering would get it again (at-least-once).
	waitEmpty(t, sp, c)

	c.stop()
	second := ch.next(300, event.SeverityInfo)
	put(t, sp, second)
	failed := mustGet(t, reg, "tripwire_shipper_failed_total")
	waitFor(t, "failed exports while the collector is down", func() bool { return testutil.ToFloat64(failed) >= 3 })
	if d := spooled(t, sp); d != len(second) {
		t.Fatalf("spool depth %d while the collector is down, want %d", d, len(second))
	}

	c.start()
	waitEmpty(t, sp, c)
	checkDelivered(t, c.trips(), append(first, second...))
	reconnects := mustGet(t, reg, "tripwire_shipper_reconnects_total")
	waitFor(t, "a counted reconnect", func() bool { return testutil.ToFloat64(reconnects) >= 1 })
}

// TestPartialSuccess: the collector accepts a batch but rejects some records
// as malformed. The shipper counts them, deletes the batch and moves on
// instead of resending the bad records forever.
func TestPartialSuccess(t *testing.T) {
	p := newTestPKI(t, 0)
	c := startCollector(t, p)
	var mu sync.Mutex
	offered := map[uint64]int{}
	c.reject = func(e *event.Event) bool {
		mu.Lock()
		offered[e.Seq]++
		mu.Unlock()
		return e.Seq%10 == 0
	}
	sp := openSpool(t)
	evs := newChain().next(100, event.SeverityInfo)
	put(t, sp, evs)
	reg := prometheus.NewRegistry()
	runShipper(t, testConfig(p, c), sp, reg)
	waitEmpty(t, sp, c)

	var good []*event.Event
	for _, e := range evs {
		if e.Seq%10 != 0 {
			good = append(good, e)
		}
	}
	checkDelivered(t, c.trips(), good)
	mu.Lock()
	for seq, n := range offered {
		if n != 1 {
			t.Errorf("seq %d offered %d times, want once", seq, n)
		}
	}
	mu.Unlock()
	rejected := mustGetVec(t, reg, "tripwire_shipper_rejected_total", reasonPartial)
	if n := testutil.ToFloat64(rejected); n != 10 {
		t.Errorf("rejected_total{reason=%s} = %v, want 10", reasonPartial, n)
	}
	if n := testutil.ToFloat64(mustGet(t, reg, "tripwire_shipper_sent_total")); n != 90 {
		t.Errorf("sent_total = %v, want 90", n)
	}
}

// TestRefusedRecordIsIsolatedAndKept: a collector refuses a whole request
// with InvalidArgument because of one record. The shipper splits the batch
// until that record is alone, so everything before it lands; the refused
// record itself validated locally, so it is kept and retried, not dropped,
// and everything arrives once the collector accepts it.
func TestRefusedRecordIsIsolatedAndKept(t *testing.T) {
	p := newTestPKI(t, 0)
	c := startCollector(t, p)
	const bad = 137
	var mu sync.Mutex
	refusedAlone := 0
	c.setRefuse(func(evs []*event.Event) error {
		for _, e := range evs {
			if e.Seq == bad {
				if len(evs) == 1 {
					mu.Lock()
					refusedAlone++
					mu.Unlock()
				}
				return status.Error(codes.InvalidArgument, "permanent error from the pipeline")
			}
		}
		return nil
	})
	sp := openSpool(t)
	evs := newChain().next(300, event.SeverityInfo)
	put(t, sp, evs)
	reg := prometheus.NewRegistry()
	runShipper(t, testConfig(p, c), sp, reg)
	waitFor(t, "the refused record retried alone", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return refusedAlone >= 3
	})
	checkDelivered(t, c.trips(), evs[:bad-1])
	if d := spooled(t, sp); d != len(evs)-(bad-1) {
		t.Fatalf("spool depth %d, want %d: the refused record and those after it stay", d, len(evs)-(bad-1))
	}

	c.setRefuse(nil)
	waitEmpty(t, sp, c)
	checkDelivered(t, c.trips(), evs)
}

func TestHeartbeats(t *testing.T) {
	p := newTestPKI(t, 0)
	c := startCollector(t, p)
	sp := openSpool(t)
	cfg := testConfig(p, c)
	cfg.HeartbeatInterval = 50 * time.Millisecond
	cfg.Status = func() event.Agent {
		return event.Agent{Status: event.StatusDegraded, Watchers: "file=fsnotify,process=proc_connector",
			Unserved: "honey-ssh: needs CAP_NET_BIND_SERVICE", Reasons: "shipping: failing"}
	}
	const headHash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	cfg.Head = func() (uint64, string) { return 42, headHash }
	reg := prometheus.NewRegistry()
	runShipper(t, cfg, sp, reg)
	waitFor(t, "three heartbeats", func() bool { return len(c.heartbeats()) >= 3 })

	for _, r := range c.heartbeats() {
		e := r.ev
		if err := e.Validate(); err != nil {
			t.Fatalf("heartbeat does not validate: %v", err)
		}
		// Not chained (no prev_hash), but announcing the chain's head.
		if e.Chained() || e.PrevHash != "" || e.Seq != 42 || e.Hash != headHash {
			t.Fatalf("heartbeat head: seq %d hash %q prev %q, want 42 %s and no prev", e.Seq, e.Hash, e.PrevHash, headHash)
		}
		a := e.Agent
		if a == nil || a.Status != event.StatusDegraded || a.Watchers != "file=fsnotify,process=proc_connector" ||
			a.Unserved != "honey-ssh: needs CAP_NET_BIND_SERVICE" || a.Reasons != "shipping: failing" || a.CertNotAfter.IsZero() {
			t.Fatalf("heartbeat agent fields: %+v", a)
		}
		if r.resource[event.ResourceHostName] != "host-a" {
			t.Fatalf("heartbeat resource host.name = %q", r.resource[event.ResourceHostName])
		}
	}
	if spooled(t, sp) != 0 {
		t.Fatalf("heartbeats went through the spool (depth %d)", spooled(t, sp))
	}

	// A failed heartbeat is not retried: the next one replaces it. Each
	// refused call must match one failed heartbeat (one more may be in
	// flight between the collector's answer and the count).
	var mu sync.Mutex
	refused := 0
	c.setRefuse(func(evs []*event.Event) error {
		mu.Lock()
		refused++
		mu.Unlock()
		return status.Error(codes.Unavailable, "down")
	})
	failed := mustGetVec(t, reg, "tripwire_shipper_heartbeats_total", "failed")
	waitFor(t, "failed heartbeats", func() bool { return testutil.ToFloat64(failed) >= 4 })
	mu.Lock()
	calls := refused
	mu.Unlock()
	if n := int(testutil.ToFloat64(failed)); calls > n+1 {
		t.Fatalf("%d refused calls for %d failed heartbeats: failed heartbeats are being retried", calls, n)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	p := newTestPKI(t, 0)
	sp := openSpool(t)
	good := Config{Endpoint: "127.0.0.1:4317", CAFile: p.ca, CertFile: p.agentCert, KeyFile: p.agent}
	for name, mutate := range map[string]func(*Config){
		"no endpoint":   func(c *Config) { c.Endpoint = "" },
		"no port":       func(c *Config) { c.Endpoint = "collector" },
		"no key":        func(c *Config) { c.KeyFile = "" },
		"missing CA":    func(c *Config) { c.CAFile = p.ca + ".missing" },
		"key not cert":  func(c *Config) { c.CertFile = p.agent },
		"CA not a cert": func(c *Config) { c.CAFile = p.agent },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := good
			mutate(&cfg)
			if _, err := New(cfg, sp, nil, nil); err == nil {
				t.Fatal("New accepted a bad config")
			}
		})
	}
	if _, err := New(good, sp, prometheus.NewRegistry(), nil); err != nil {
		t.Fatalf("New refused a good config: %v", err)
	}
}

func mustGet(t testing.TB, reg *prometheus.Registry, name string) prometheus.Collector {
	t.Helper()
	return collectorFor(t, reg, name, "")
}

func mustGetVec(t testing.TB, reg *prometheus.Registry, name, label string) prometheus.Collector {
	t.Helper()
	return collectorFor(t, reg, name, label)
}

// collectorFor finds a registered metric by name (and its one label value)
// and returns a collector that reads it live, for testutil.ToFloat64.
func collectorFor(t testing.TB, reg *prometheus.Registry, name, label string) prometheus.Collector {
	t.Helper()
	return gatherOne{reg: reg, name: name, label: label, t: t}
}

type gatherOne struct {
	reg         *prometheus.Registry
	name, label string
	t           testing.TB
}

func (g gatherOne) Describe(ch chan<- *prometheus.Desc) {}

func (g gatherOne) Collect(ch chan<- prometheus.Metric) {
	mfs, err := g.reg.Gather()
	if err != nil {
		g.t.Error(err)
		return
	}
	for _, mf := range mfs {
		if mf.GetName() != g.name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if g.label != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != g.label) {
				continue
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(g.name, "", nil, nil), prometheus.UntypedValue, v)
			return
		}
	}
	g.t.Error(fmt.Errorf("metric %s{%s} not registered", g.name, g.label))
}
