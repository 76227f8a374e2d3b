package plugin

import (
	"fmt"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/contract"
)

// Free text reads the range's newest rows first (newestFirst of them) and
// asks the indexes only when they do not fill the page. Either way the
// pages are the matches of the whole range, newest first: q in every row
// (filled at once), in one row of 40 (too few among the newest, so the
// indexes page through the range), and only in rows older than the newest
// newestFirst.
func TestFreeTextPagesTheWholeRange(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	n := newestFirst + 500
	e.exec(t, `INSERT INTO alerts (alert_id, event_time, received_at, host_id, host_name, event_name, tripwire_type,
  rule_name, severity, seq, summary, event_detail, search_words)
SELECT ('0190c000-0000-7000-8000-' || lpad(g::text, 12, '0'))::uuid, $1::timestamptz - g * interval '1 second', now(),
       host_id, host_name, 'tripwire.file.access', 'file', 'bulk', 'INFO', NULL, s.summary, '{}', $2::text[] || s.words
FROM hosts, generate_series(1, $3) g,
     LATERAL (SELECT 'bulk trip ' || CASE WHEN g % 40 = 0 THEN 'zebra ' ELSE '' END ||
                     CASE WHEN g > $3 - 10 THEN 'okapi ' ELSE '' END || g AS summary,
                     ARRAY[g::text] || CASE WHEN g % 40 = 0 THEN ARRAY['zebra'] ELSE '{}' END ||
                     CASE WHEN g > $3 - 10 THEN ARRAY['okapi'] ELSE '{}' END AS words) s
WHERE host_name = 'web-01'`, e.now.Add(-time.Minute), contract.SearchWords("bulk trip"), n)

	from := "&from=" + url.QueryEscape(e.now.Add(-2*time.Hour).Format(time.RFC3339))
	for _, c := range []struct {
		q    string
		want []int // g of the matches, newest (smallest g) first
	}{
		{"bulk trip", seq(1, n, 1)},
		{"zebra", seq(40, n, 40)},
		{"okapi", seq(n-9, n, 1)},
	} {
		got := pageNumbers(t, e, "/api/v1/alerts?limit=100&q="+url.QueryEscape(c.q)+from, "0190c000-0000-7000-8000-%012d", n/100+2)
		if !slices.Equal(got, c.want) {
			t.Errorf("q=%s: %d rows %v..., want %d rows %v...", c.q, len(got), head(got), len(c.want), head(c.want))
		}
	}
}

// pageNumbers walks the pages of GET query (path and parameters) by their
// cursors and returns the number in each alert's id, read by idFormat (a
// fixed prefix and one %012d), in the order given. It fails on an error
// answer, an alert whose id is not of that form, or more than maxPages
// pages.
func pageNumbers(t *testing.T, e *env, query, idFormat string, maxPages int) []int {
	t.Helper()
	var got []int
	path := query
	for pages := 0; path != ""; pages++ {
		if pages > maxPages {
			t.Fatalf("%s: more pages than rows", query)
		}
		code, body := e.call(t, "GET", path, "Viewer")
		if code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		page := decode[AlertPage](t, body)
		for _, a := range page.Alerts {
			var g int
			if _, err := fmt.Sscanf(a.AlertID, idFormat, &g); err != nil {
				t.Fatalf("%s found %s (%q), not one of the rows it pages", query, a.AlertID, a.Summary)
			}
			got = append(got, g)
		}
		path = ""
		if page.Next != "" {
			path = query + "&cursor=" + url.QueryEscape(page.Next)
		}
	}
	return got
}

func seq(from, to, step int) []int {
	var out []int
	for g := from; g <= to; g += step {
		out = append(out, g)
	}
	return out
}

func head(s []int) []int { return s[:min(len(s), 5)] }
