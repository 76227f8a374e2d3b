package plugin

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"
)

// ListAlerts reads the last day, then the last 8 days, before the whole
// range (windows). Pages are the same as one query over the range would
// give: newest first, none missed or repeated, whether a page is filled
// inside a window or runs across its edge, for a structured filter, for
// several hosts (one query per host), for free text, and from a to or a
// cursor back in time; an alert dated ahead (an agent clock running fast)
// comes first.
func TestPagesAcrossWindows(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	ago := []time.Duration{-2 * time.Hour, time.Hour, 23 * time.Hour, 25 * time.Hour, 3 * 24 * time.Hour,
		190 * time.Hour, 194 * time.Hour, 12 * 24 * time.Hour, 29 * 24 * time.Hour, 40 * 24 * time.Hour, 100 * 24 * time.Hour}
	for i, d := range ago {
		host := []string{"web-01", "db-01"}[i%2]
		e.insertAlert(t, seedAlert{id: fmt.Sprintf("0190d000-0000-7000-8000-%012d", i), host: host, typ: "file",
			event: "tripwire.file.access", rule: "window", severity: "WARN", ago: d, summary: "okapi " + strconv.Itoa(i), seq: int64(1000 + i)})
	}
	ms := func(d time.Duration) string { return strconv.FormatInt(e.now.Add(-d).UnixMilli(), 10) }
	for _, c := range []struct {
		query string
		want  []int // indexes into ago, newest first
	}{
		{"rule=window", seq(0, 10, 1)},
		{"rule=window&host=web-01,db-01", seq(0, 10, 1)},
		{"q=okapi&from=" + ms(30*24*time.Hour), seq(0, 8, 1)},
		{"rule=window&to=" + ms(2*24*time.Hour), seq(4, 10, 1)},
		{"q=okapi&from=" + ms(30*24*time.Hour) + "&to=" + ms(192*time.Hour), seq(6, 8, 1)},
	} {
		for _, limit := range []int{1, 2, 3, 4, 100} {
			got := pageNumbers(t, e, "/api/v1/alerts?limit="+strconv.Itoa(limit)+"&"+c.query, "0190d000-0000-7000-8000-%012d", len(ago)+1)
			if !slices.Equal(got, c.want) {
				t.Errorf("%s limit %d: got %v, want %v", c.query, limit, got, c.want)
			}
		}
	}
}
