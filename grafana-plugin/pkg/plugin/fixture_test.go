package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/jackc/pgx/v5"

	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/contract/golden"
	"github.com/tripwire-sec/tripwire/contract/pgtest"
)

func TestMain(m *testing.M) {
	code := pgtest.Run(m)
	if benchCluster != nil {
		// seedBench's cluster outlives each benchmark that uses it.
		if err := benchCluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		os.RemoveAll(benchCluster.Dir())
	}
	os.Exit(code)
}

// env is one test's database and datasource.
type env struct {
	ds   *Datasource
	conn *pgx.Conn
	dsn  string
	now  time.Time
}

func settingsJSON(dsn string) []byte {
	u, _ := url.Parse(dsn)
	return fmt.Appendf(nil, `{"host":%q,"port":%s,"database":%q,"user":"postgres","sslMode":"disable","heartbeatSeconds":15}`,
		u.Hostname(), u.Port(), strings.TrimPrefix(u.Path, "/"))
}

func newEnv(t testing.TB) *env {
	t.Helper()
	return newEnvAt(t, pgtest.NewSchemaDB(t))
}

// newEnvAt is newEnv on the database at dsn, which has the schema.
func newEnvAt(t testing.TB, dsn string) *env {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	inst, err := NewDatasource(ctx, backend.DataSourceInstanceSettings{UID: "tw", JSONData: settingsJSON(dsn)})
	if err != nil {
		t.Fatal(err)
	}
	ds := inst.(*Datasource)
	if ds.settingsE != nil {
		t.Fatal(ds.settingsE)
	}
	t.Cleanup(ds.Dispose)
	return &env{ds: ds, conn: conn, dsn: dsn, now: time.Now().UTC().Truncate(time.Second)}
}

func (e *env) exec(t testing.TB, sql string, args ...any) {
	t.Helper()
	if _, err := e.conn.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// seeded alerts: hostIdx, type, event, rule, severity, minutes ago.
type seedAlert struct {
	id       string
	host     string
	typ      string
	event    string
	rule     string
	severity string
	ago      time.Duration
	summary  string
	seq      int64
}

var seedHosts = []struct {
	name, status string
	lastSeenAgo  time.Duration
}{
	{"web-01", contract.StatusOnline, 5 * time.Second},
	{"db-01", contract.StatusOnline, 10 * time.Minute}, // silent: derived OFFLINE
	{"mac-01", contract.StatusDegraded, 2 * time.Second},
}

// seedAlerts is the fixture every test sees: 3 hosts, every type and
// severity, 4 rules, spread over the last 50 minutes.
func seedAlerts() []seedAlert {
	var out []seedAlert
	types := []struct{ typ, event, rule string }{
		{"file", "tripwire.file.access", "shadow-read"},
		{"process", "tripwire.process.exec", "nc-exec"},
		{"network", "tripwire.network.connection", "ssh-honeyport"},
		{"file", "tripwire.file.modify", "passwd-write"},
	}
	sev := []string{"INFO", "WARN", "CRITICAL"}
	for i := range 30 {
		tp := types[i%len(types)]
		h := seedHosts[i%len(seedHosts)].name
		out = append(out, seedAlert{
			id:   fmt.Sprintf("0190a000-0000-7000-8000-%012d", i+1),
			host: h, typ: tp.typ, event: tp.event, rule: tp.rule, severity: sev[(i+i/3)%3],
			ago:     time.Duration(50-i) * time.Minute,
			summary: fmt.Sprintf("%s on %s #%d", tp.rule, h, i+1),
			seq:     int64(i + 1),
		})
	}
	return out
}

func (e *env) seed(t testing.TB) {
	t.Helper()
	for _, h := range seedHosts {
		e.exec(t, `INSERT INTO hosts (host_name, platform, arch, agent_version, watchers, status, last_seen, cert_not_after)
VALUES ($1, 'linux', 'amd64', '0.1.0', 'file=fanotify,process=ebpf', $2, $3, $4)`,
			h.name, h.status, e.now.Add(-h.lastSeenAgo), e.now.AddDate(0, 6, 0))
	}
	for _, a := range seedAlerts() {
		e.insertAlert(t, a)
	}
}

func (e *env) insertAlert(t testing.TB, a seedAlert) {
	t.Helper()
	at := e.now.Add(-a.ago)
	path := "/srv/data/report.pdf"
	if a.rule == "shadow-read" {
		path = "/etc/shadow"
	}
	detail, _ := json.Marshal(map[string]any{
		"event.name": a.event, "severity_text": a.severity, "time_unix_nano": at.UnixNano(),
		"log.record.uid": a.id, "security_rule.name": a.rule, "tripwire.type": a.typ,
		"file.path": path, "process.pid": 4242, "process.user.name": "mallory",
	})
	// The search words as the exporter stores them (migration 0012).
	words := contract.SearchWords(contract.SearchText(a.summary, a.rule, a.host, "", "mallory"))
	e.exec(t, `INSERT INTO alerts (alert_id, event_time, received_at, host_id, host_name, event_name, tripwire_type,
  rule_name, severity, seq, summary, event_detail, search_words)
SELECT $1, $2, $2, host_id, host_name, $4, $5, $6, $7, $8, $9, $10, $11 FROM hosts WHERE host_name = $3`,
		a.id, at, a.host, a.event, a.typ, a.rule, a.severity, a.seq, a.summary, detail, words)
}

// seedChain stores the golden chain as web-01's audit entries and head.
func (e *env) seedChain(t testing.TB, host string) []golden.Entry {
	t.Helper()
	g := golden.Chain()
	for i, entry := range g {
		var p struct {
			ID   string `json:"log.record.uid"`
			Time int64  `json:"time_unix_nano"`
		}
		if err := json.Unmarshal([]byte(entry.Canonical), &p); err != nil {
			t.Fatal(err)
		}
		e.exec(t, `INSERT INTO audit_entries (host_id, seq, alert_id, event_time, prev_hash, hash, payload)
SELECT host_id, $2, $3, $4, $5, $6, $7 FROM hosts WHERE host_name = $1`,
			host, i+1, p.ID, time.Unix(0, p.Time), entry.PrevHash, entry.Hash, entry.Canonical)
	}
	last := g[len(g)-1]
	e.exec(t, `INSERT INTO chain_heads (host_id, seq, hash) SELECT host_id, $2, $3 FROM hosts WHERE host_name = $1`,
		host, len(g), last.Hash)
	return g
}

// call sends a resource request through CallResource, as Grafana does.
func (e *env) call(t testing.TB, method, path, role string) (int, []byte) {
	t.Helper()
	u, err := url.Parse(path)
	if err != nil {
		t.Fatal(err)
	}
	var user *backend.User
	if role != "" {
		user = &backend.User{Login: "tester", Role: role}
	}
	req := &backend.CallResourceRequest{
		PluginContext: backend.PluginContext{User: user, DataSourceInstanceSettings: &backend.DataSourceInstanceSettings{UID: "tw"}},
		Path:          strings.TrimPrefix(u.EscapedPath(), "/"),
		URL:           strings.TrimPrefix(path, "/"),
		Method:        method,
	}
	var resp *backend.CallResourceResponse
	err = e.ds.CallResource(context.Background(), req, backend.CallResourceResponseSenderFunc(func(r *backend.CallResourceResponse) error {
		resp = r
		return nil
	}))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if resp == nil {
		t.Fatalf("%s %s: no response", method, path)
	}
	return resp.Status, resp.Body
}

func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	return v
}

func settingsForTest(jsonData string) backend.DataSourceInstanceSettings {
	return backend.DataSourceInstanceSettings{UID: "tw", JSONData: []byte(jsonData)}
}
