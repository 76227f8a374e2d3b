package tripwireexporter

import (
	"context"
	"slices"
	"testing"

	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/contract/pgtest"
	"github.com/tripwire-sec/tripwire/internal/event"
)

// A stored trip carries the search words free text finds it by (migration
// 0012), and the SQL alert_search_text the plugin matches q against agrees
// with the text the words came from.
func TestTripStoredWithSearchWords(t *testing.T) {
	dsn := pgtest.NewDB(t)
	e := startExporter(t, testConfig(dsn))
	pool := openPool(t, dsn)
	a := newAgent(t, "web-1")
	ev := a.trips(1)[0]
	push(t, e, a.logs(ev))

	var words []string
	var text string
	if err := pool.QueryRow(context.Background(), `SELECT search_words,
			alert_search_text(summary, rule_name, host_name, `+detailSQL+`) FROM alerts WHERE alert_id = $1`, ev.AlertID).
		Scan(&words, &text); err != nil {
		t.Fatalf("reading the alert row: %v", err)
	}
	if want := event.SearchWords(ev.Summary(), ev.Rule, "web-1", ev.Process.CommandLine, ev.Process.UserName); !slices.Equal(words, want) {
		t.Errorf("search_words = %q, want %q", words, want)
	}
	for _, w := range []string{"web", "1", "shadow", "etc", "cat", "mallory"} {
		if !slices.Contains(words, w) {
			t.Errorf("search_words %q lacks %q", words, w)
		}
	}
	if want := contract.SearchText(ev.Summary(), ev.Rule, "web-1", ev.Process.CommandLine, ev.Process.UserName); text != want {
		t.Errorf("alert_search_text = %q, want contract.SearchText's %q", text, want)
	}
}
