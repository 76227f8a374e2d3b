package plugin

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/tripwire-sec/tripwire/contract"
)

func TestResourceStatusCodes(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	e.seedChain(t, "web-01")
	ms := strconv.FormatInt(e.now.Add(-time.Hour).UnixMilli(), 10)
	cases := []struct {
		method, path, role string
		want               int
		wantBody           string
	}{
		{"GET", "/api/v1/alerts", "Viewer", 200, `"alerts"`},
		{"GET", "/api/v1/alerts?host=web-01&type=file&severity=CRITICAL,WARN&rule=shadow-read&from=" + ms, "Viewer", 200, ""},
		{"GET", "/api/v1/alerts?limit=0", "Viewer", 400, "limit"},
		{"GET", "/api/v1/alerts?limit=1001", "Viewer", 400, "limit"},
		{"GET", "/api/v1/alerts?limit=ten", "Viewer", 400, "limit"},
		{"GET", "/api/v1/alerts?type=files", "Viewer", 400, "type"},
		{"GET", "/api/v1/alerts?severity=critical", "Viewer", 400, "severity"},
		{"GET", "/api/v1/alerts?from=yesterday", "Viewer", 400, "from"},
		{"GET", "/api/v1/alerts?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "Viewer", 400, "before"},
		{"GET", "/api/v1/alerts?cursor=%%%", "Viewer", 400, ""},
		{"GET", "/api/v1/alerts?cursor=bm90LWEtY3Vyc29y", "Viewer", 400, "cursor"},
		{"GET", "/api/v1/alerts?hots=web-01", "Viewer", 400, "unknown parameter"},
		{"GET", "/api/v1/alerts?limit=1&limit=2", "Viewer", 400, "more than once"},
		{"GET", "/api/v1/alerts?host=" + strings.Repeat("x", 300), "Viewer", 400, "longer"},
		{"GET", "/api/v1/alerts?host=a%00b", "Viewer", 400, "UTF-8"},
		{"GET", "/api/v1/alerts?rule=%ff", "Viewer", 400, "UTF-8"},
		{"POST", "/api/v1/alerts", "Admin", 405, ""},
		{"DELETE", "/api/v1/alerts/0190a000-0000-7000-8000-000000000001", "Admin", 405, ""},
		{"PUT", "/api/v1/hosts", "Editor", 405, ""},
		{"GET", "/api/v1/alerts/0190a000-0000-7000-8000-000000000001", "Viewer", 200, `"event_detail"`},
		{"GET", "/api/v1/alerts/0190a000-0000-7000-8000-999999999999", "Viewer", 404, ""},
		{"GET", "/api/v1/alerts/not-a-uuid", "Viewer", 400, "UUID"},
		{"GET", "/api/v1/alerts/0190a000-0000-7000-8000-000000000001?x=1", "Viewer", 400, "unknown parameter"},
		{"GET", "/api/v1/hosts", "Viewer", 200, `"web-01"`},
		{"GET", "/api/v1/hosts?all=1", "Viewer", 400, ""},
		{"GET", "/api/v1/audit?host=web-01", "Viewer", 200, `"entries"`},
		{"GET", "/api/v1/audit?host=web-01&from=" + ms + "&to=" + strconv.FormatInt(e.now.UnixMilli(), 10), "Viewer", 200, ""},
		{"GET", "/api/v1/audit", "Viewer", 400, "host"},
		{"GET", "/api/v1/audit?host=nope", "Viewer", 404, ""},
		{"GET", "/api/v1/audit?host=web-01&cursor=-3", "Viewer", 400, "cursor"},
		{"GET", "/api/v1/audit/verify?host=web-01", "Viewer", 200, `"intact":true`},
		{"GET", "/api/v1/audit/verify", "Viewer", 400, "host"},
		{"GET", "/api/v1/audit/verify?host=nope", "Viewer", 404, ""},
		{"POST", "/api/v1/audit/verify?host=web-01", "Admin", 405, ""},
		{"GET", "/api/v1/stats", "Viewer", 200, `"by_severity"`},
		{"GET", "/api/v1/stats?from=" + ms, "Viewer", 200, `"total":`},
		{"GET", "/api/v1/stats?from=9999999999999999", "Viewer", 400, "range"},
		{"GET", "/api/v1/nope", "Viewer", 404, ""},
		{"GET", "/api/v2/alerts", "Viewer", 404, ""},
		// Roles: reads need Viewer or above.
		// Grafana admits only callers with datasources:query on this
		// datasource; one granted it through RBAC may have no org role.
		{"GET", "/api/v1/alerts", "None", 200, `"alerts"`},
		{"GET", "/api/v1/live?severity=WARN,CRITICAL&host=web%2001", "Viewer", 200, `"ds/tw/live/host=web=2001/severity=CRITICAL/severity=WARN"`},
		{"GET", "/api/v1/live?severity=critical", "Viewer", 400, "severity"},
		{"GET", "/api/v1/live?q=x", "Viewer", 400, "unknown parameter"},
		{"GET", "/api/v1/alerts?q=shadow", "Viewer", 400, "time range"},
		{"GET", "/api/v1/alerts?q=__", "Viewer", 400, "letter or digit"},
		{"GET", "/api/v1/hosts", "Editor", 200, ""},
		{"GET", "/api/v1/hosts", "Admin", 200, ""},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path+" "+c.role, func(t *testing.T) {
			status, body := e.call(t, c.method, c.path, c.role)
			if status != c.want {
				t.Fatalf("status %d, want %d; body %s", status, c.want, body)
			}
			if c.wantBody != "" && !strings.Contains(string(body), c.wantBody) {
				t.Fatalf("body %s does not contain %q", body, c.wantBody)
			}
			if c.want == http.StatusBadRequest && !strings.Contains(string(body), `"error"`) {
				t.Fatalf("400 without a message: %s", body)
			}
		})
	}
}

func TestAlertsFiltersAndPagination(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	all := seedAlerts()
	count := func(pred func(seedAlert) bool) int {
		n := 0
		for _, a := range all {
			if pred(a) {
				n++
			}
		}
		return n
	}
	hourAgo := "&from=" + url.QueryEscape(e.now.Add(-time.Hour).Format(time.RFC3339)) // free text needs a range
	cases := []struct {
		query string
		want  int
	}{
		{"", len(all)},
		{"host=web-01", count(func(a seedAlert) bool { return a.host == "web-01" })},
		{"host=web-01,db-01", count(func(a seedAlert) bool { return a.host != "mac-01" })},
		{"host=web-01&host=db-01", count(func(a seedAlert) bool { return a.host != "mac-01" })},
		{"type=process", count(func(a seedAlert) bool { return a.typ == "process" })},
		{"severity=CRITICAL", count(func(a seedAlert) bool { return a.severity == "CRITICAL" })},
		{"rule=passwd-write&severity=INFO", count(func(a seedAlert) bool { return a.rule == "passwd-write" && a.severity == "INFO" })},
		{"q=%2317" + hourAgo, 1}, // "#17" in a summary
		{"q=SHADOW" + hourAgo, count(func(a seedAlert) bool { return a.rule == "shadow-read" })},
		{"q=shadow-read" + hourAgo, count(func(a seedAlert) bool { return a.rule == "shadow-read" })},
		{"q=adow-re" + hourAgo, 0},        // whole words, not any substring
		{"q=read%20shadow" + hourAgo, 0},  // both words are there, but not as typed
		{"q=mallory" + hourAgo, len(all)}, // a user name in every event's detail
		{"q=100%25" + hourAgo, 0},         // a literal %, not a wildcard
		{"q=shadow_read" + hourAgo, 0},    // a literal _, not a wildcard
		{"q=shadow%25read" + hourAgo, 0},  // a literal %, not a wildcard
		{"from=" + url.QueryEscape(e.now.Add(-20*time.Minute).Format(time.RFC3339)), count(func(a seedAlert) bool { return a.ago <= 20*time.Minute })},
		{"to=" + url.QueryEscape(e.now.Add(-20*time.Minute).Format(time.RFC3339)), count(func(a seedAlert) bool { return a.ago > 20*time.Minute })},
		{"host=unknown-host", 0},
	}
	for _, c := range cases {
		t.Run(c.query, func(t *testing.T) {
			status, body := e.call(t, "GET", "/api/v1/alerts?"+c.query, "Viewer")
			if status != 200 {
				t.Fatalf("status %d: %s", status, body)
			}
			page := decode[AlertPage](t, body)
			if len(page.Alerts) != c.want {
				t.Fatalf("%d alerts, want %d", len(page.Alerts), c.want)
			}
			for i := 1; i < len(page.Alerts); i++ {
				if page.Alerts[i].EventTime.After(page.Alerts[i-1].EventTime) {
					t.Fatal("not newest first")
				}
			}
		})
	}

	// Keyset pagination visits every alert exactly once, even when new
	// alerts arrive between pages.
	seen := map[string]bool{}
	path := "/api/v1/alerts?limit=7"
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
		status, body := e.call(t, "GET", path, "Viewer")
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		page := decode[AlertPage](t, body)
		for _, a := range page.Alerts {
			if seen[a.AlertID] {
				t.Fatalf("alert %s on two pages", a.AlertID)
			}
			seen[a.AlertID] = true
		}
		if pages == 0 {
			e.insertAlert(t, seedAlert{id: "0190a000-0000-7000-8000-100000000000", host: "web-01", typ: "file",
				event: "tripwire.file.access", rule: "shadow-read", severity: "WARN", summary: "late"})
		}
		if page.Next == "" {
			break
		}
		path = "/api/v1/alerts?limit=7&cursor=" + page.Next
	}
	if len(seen) != len(all) {
		t.Fatalf("paged through %d alerts, want %d", len(seen), len(all))
	}

	// Several hosts take the per-host merge path; it pages the same way.
	var got []Alert
	path = "/api/v1/alerts?limit=3&host=web-01,db-01&type=file,network"
	for range 20 {
		status, body := e.call(t, "GET", path, "Viewer")
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		page := decode[AlertPage](t, body)
		got = append(got, page.Alerts...)
		if page.Next == "" {
			break
		}
		path = "/api/v1/alerts?limit=3&host=web-01,db-01&type=file,network&cursor=" + page.Next
	}
	// +1: the "late" web-01 file alert inserted above.
	want := count(func(a seedAlert) bool { return a.host != "mac-01" && a.typ != "process" }) + 1
	if len(got) != want {
		t.Fatalf("multi-host paging: %d alerts, want %d", len(got), want)
	}
	for i := 1; i < len(got); i++ {
		if !got[i].EventTime.Before(got[i-1].EventTime) {
			t.Fatalf("multi-host paging out of order at %d", i)
		}
	}
}

// Every filter gets classic injection payloads. Each must either be refused
// with 400 or match nothing; none may error (500) or widen the result.
func TestResourceSQLInjection(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	e.seedChain(t, "web-01")
	payloads := []string{
		`' OR '1'='1`,
		`web-01' OR 1=1 --`,
		`'; DROP TABLE alerts; --`,
		`web-01'); DELETE FROM hosts; --`,
		`" OR ""="`,
		`\'; SELECT pg_sleep(5); --`,
		`1) UNION SELECT host_name FROM hosts --`,
		`%' OR 'x' LIKE '%`,
	}
	params := []string{"host", "type", "severity", "rule", "q", "from", "to", "limit", "cursor"}
	for _, p := range payloads {
		for _, param := range params {
			path := "/api/v1/alerts?" + param + "=" + url.QueryEscape(p)
			status, body := e.call(t, "GET", path, "Viewer")
			switch status {
			case 400:
			case 200:
				if n := len(decode[AlertPage](t, body).Alerts); n != 0 {
					t.Errorf("%s: %d alerts matched an injection payload", path, n)
				}
			default:
				t.Errorf("%s: status %d: %s", path, status, body)
			}
		}
		for _, path := range []string{
			"/api/v1/alerts/" + url.PathEscape(p),
			"/api/v1/audit?host=" + url.QueryEscape(p),
			"/api/v1/audit?host=web-01&cursor=" + url.QueryEscape(p),
			"/api/v1/audit?host=web-01&from=" + url.QueryEscape(p),
			"/api/v1/audit/verify?host=" + url.QueryEscape(p),
			"/api/v1/stats?from=" + url.QueryEscape(p),
			"/api/v1/stats?to=" + url.QueryEscape(p),
		} {
			status, body := e.call(t, "GET", path, "Viewer")
			if status != 400 && status != 404 {
				t.Errorf("%s: status %d, want 400 or 404: %s", path, status, body)
			}
		}
	}
	// The tables are intact.
	var alerts, hosts int
	if err := e.conn.QueryRow(t.Context(), "SELECT (SELECT count(*) FROM alerts), (SELECT count(*) FROM hosts)").Scan(&alerts, &hosts); err != nil {
		t.Fatal(err)
	}
	if alerts != len(seedAlerts()) || hosts != len(seedHosts) {
		t.Fatalf("after injection attempts: %d alerts, %d hosts", alerts, hosts)
	}
}

func TestHostsDerivedStatus(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	status, body := e.call(t, "GET", "/api/v1/hosts", "Viewer")
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	resp := decode[struct {
		Hosts        []Host  `json:"hosts"`
		OfflineAfter float64 `json:"offline_after_seconds"`
	}](t, body)
	if resp.OfflineAfter != 45 {
		t.Errorf("offline after %v s, want 45 (3 × the fixture's 15 s heartbeat)", resp.OfflineAfter)
	}
	want := map[string]string{"web-01": contract.StatusOnline, "db-01": contract.StatusOffline, "mac-01": contract.StatusDegraded}
	if len(resp.Hosts) != len(want) {
		t.Fatalf("%d hosts", len(resp.Hosts))
	}
	for _, h := range resp.Hosts {
		if h.Status != want[h.HostName] {
			t.Errorf("%s: status %s, want %s", h.HostName, h.Status, want[h.HostName])
		}
		if h.Alerts24h != 10 {
			t.Errorf("%s: %d alerts in 24 h, want 10", h.HostName, h.Alerts24h)
		}
	}
}

func TestAuditEntriesAndVerify(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	g := e.seedChain(t, "web-01")

	status, body := e.call(t, "GET", "/api/v1/audit?host=web-01&limit=2", "Viewer")
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	page := decode[AuditPage](t, body)
	if len(page.Entries) != 2 || page.Entries[0].Seq != 3 || page.Next != "2" {
		t.Fatalf("first page: %+v", page)
	}
	_, body = e.call(t, "GET", "/api/v1/audit?host=web-01&limit=2&cursor="+page.Next, "Viewer")
	page = decode[AuditPage](t, body)
	if len(page.Entries) != 1 || page.Entries[0].Seq != 1 || page.Next != "" {
		t.Fatalf("second page: %+v", page)
	}

	verify := func() ChainStatus {
		t.Helper()
		status, body := e.call(t, "GET", "/api/v1/audit/verify?host=web-01", "Viewer")
		if status != 200 {
			t.Fatalf("status %d: %s", status, body)
		}
		return decode[ChainStatus](t, body)
	}
	st := verify()
	if !st.Intact || st.VerifiedUpTo != 3 || st.Entries != 3 || len(st.Breaks) != 0 || *st.HeadSeq != 3 {
		t.Fatalf("intact chain: %+v", st)
	}

	// Modify a payload: seq 2 no longer hashes to its stored hash. Inside
	// the verified prefix such a rewrite is found by the next full pass
	// (TestVerifyReusesTheVerifiedPrefix); here every call is one.
	e.ds.store.verifyMaxAge = 0
	e.exec(t, `UPDATE audit_entries SET payload = jsonb_set(payload::jsonb, '{process.pid}', '1')::text WHERE seq = 2`)
	st = verify()
	if st.Intact || st.VerifiedUpTo != 1 || len(st.Breaks) != 1 || st.Breaks[0].Kind != contract.BreakMismatch || st.Breaks[0].Seq != 2 {
		t.Fatalf("modified payload: %+v", st)
	}
	e.exec(t, `UPDATE audit_entries SET payload = $1 WHERE seq = 2`, g[1].Canonical)
	if st = verify(); !st.Intact {
		t.Fatalf("restored payload: %+v", st)
	}

	// Delete an entry: a gap at 3.
	e.exec(t, `DELETE FROM audit_entries WHERE seq = 2`)
	st = verify()
	if st.Intact || st.VerifiedUpTo != 1 || st.Breaks[0].Kind != contract.BreakGap || st.Breaks[0].Seq != 3 {
		t.Fatalf("deleted entry: %+v", st)
	}

	// Truncate the tail: the stored entries end before the chain head.
	e.exec(t, `DELETE FROM audit_entries WHERE seq = 3`)
	st = verify()
	if st.Intact || st.VerifiedUpTo != 1 || st.Breaks[len(st.Breaks)-1].Kind != contract.BreakHead {
		t.Fatalf("truncated tail: %+v", st)
	}

	// A break the collector recorded shows up even if the entries are fine.
	e2 := newEnv(t)
	e2.seed(t)
	e2.seedChain(t, "web-01")
	e2.exec(t, `INSERT INTO chain_breaks (host_id, kind, expected_seq, got_seq) SELECT host_id, $1, 4, 4 FROM hosts WHERE host_name='web-01'`, contract.BreakFork)
	status, body = e2.call(t, "GET", "/api/v1/audit/verify?host=web-01", "Viewer")
	st = decode[ChainStatus](t, body)
	if status != 200 || st.Intact || st.VerifiedUpTo != 3 || len(st.Recorded) != 1 || st.Recorded[0].Kind != contract.BreakFork {
		t.Fatalf("recorded break: %d %+v", status, st)
	}
}

func TestStats(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	status, body := e.call(t, "GET", "/api/v1/stats", "Viewer")
	if status != 200 {
		t.Fatalf("status %d: %s", status, body)
	}
	st := decode[Stats](t, body)
	if st.Total != 30 || len(st.BySeverity) != 3 || len(st.TopHosts) != 3 || len(st.TopRules) != 4 {
		t.Fatalf("stats: %+v", st)
	}
	statuses := map[string]int64{}
	for _, c := range st.HostStatus {
		statuses[c.Key] = c.Count
	}
	if statuses[contract.StatusOffline] != 1 || statuses[contract.StatusOnline] != 1 || statuses[contract.StatusDegraded] != 1 {
		t.Fatalf("host status counts: %v", statuses)
	}
}

func TestUnconfiguredDatasource(t *testing.T) {
	inst, err := NewDatasource(t.Context(), settingsForTest(`{"port": 99999}`))
	if err != nil {
		t.Fatal(err)
	}
	ds := inst.(*Datasource)
	defer ds.Dispose()
	res, err := ds.CheckHealth(t.Context(), nil)
	if err != nil || res.Status != backend.HealthStatusError || !strings.Contains(res.Message, "host is required") || !strings.Contains(res.Message, "port") {
		t.Fatalf("health: %+v %v", res, err)
	}
	e := &env{ds: ds}
	if status, body := e.call(t, "GET", "/api/v1/alerts", "Viewer"); status != 503 {
		t.Fatalf("status %d: %s", status, body)
	}
}
