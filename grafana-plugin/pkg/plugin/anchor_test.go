package plugin

import (
	"context"
	"testing"
	"time"

	"github.com/tripwire-sec/tripwire/contract"
)

// TestVerifyFromAnchor: once retention purged the oldest entries and kept
// the last one as the anchor (what the collector's exporter does), the
// chain verifies from the anchor; the first stored entry must follow it and
// link to its hash, and any change after it is still found.
func TestVerifyFromAnchor(t *testing.T) {
	e := newEnv(t)
	e.seed(t)
	const n, k = 500, 200 // entries, purged up to k
	_, hash, _ := e.seedLongChain(t, "web-01", n)
	ctx := context.Background()
	purge := func(anchorHash string) {
		t.Helper()
		e.exec(t, `DELETE FROM audit_anchors`)
		e.exec(t, `INSERT INTO audit_anchors (host_id, seq, hash, event_time)
SELECT host_id, $2, $3, $4 FROM hosts WHERE host_name = $1`, "web-01", k, anchorHash, time.Unix(1795694400, 0))
		e.ds.store.verified = map[string]verifiedPrefix{} // another replica's plugin: nothing cached
	}
	e.exec(t, `DELETE FROM audit_entries a USING hosts h WHERE h.host_id = a.host_id AND h.host_name = 'web-01' AND a.seq <= $1`, k)
	purge(string(hash[k-1]))

	st, err := e.ds.store.VerifyChain(ctx, "web-01")
	if err != nil {
		t.Fatal(err)
	}
	if !st.Intact || st.FirstSeq != k+1 || st.VerifiedUpTo != n || st.Entries != n-k || st.Anchor == nil || st.Anchor.Seq != k {
		t.Fatalf("after the purge: intact %v first %d verified %d entries %d anchor %+v breaks %+v",
			st.Intact, st.FirstSeq, st.VerifiedUpTo, st.Entries, st.Anchor, st.Breaks)
	}

	kinds := func() []contract.BreakKind {
		t.Helper()
		e.ds.store.verified = map[string]verifiedPrefix{}
		st, err := e.ds.store.VerifyChain(ctx, "web-01")
		if err != nil {
			t.Fatal(err)
		}
		if st.Intact == (len(st.Breaks) > 0) {
			t.Errorf("intact %v with breaks %+v", st.Intact, st.Breaks)
		}
		var out []contract.BreakKind
		for _, b := range st.Breaks {
			out = append(out, b.Kind)
		}
		return out
	}
	// A payload rewritten after the anchor.
	e.exec(t, `UPDATE audit_entries SET payload = replace(payload, 'analyst', 'mallory') WHERE seq = $1`, k+50)
	if got := kinds(); len(got) != 1 || got[0] != contract.BreakMismatch {
		t.Errorf("rewritten payload after the anchor: %v, want one mismatch", got)
	}
	e.exec(t, `UPDATE audit_entries SET payload = replace(payload, 'mallory', 'analyst') WHERE seq = $1`, k+50)
	if got := kinds(); len(got) != 0 {
		t.Fatalf("restored: %v", got)
	}
	// The first stored entry no longer following the anchor: entries
	// deleted right after it...
	e.exec(t, `UPDATE audit_entries SET seq = -seq WHERE seq = $1`, k+1)
	if got := kinds(); len(got) != 1 || got[0] != contract.BreakGap {
		t.Errorf("first entry after the anchor missing: %v, want one gap", got)
	}
	e.exec(t, `UPDATE audit_entries SET seq = -seq WHERE seq = $1`, -(k + 1))
	// ...or an anchor that the chain does not link to.
	purge(string(hash[k-2]))
	if got := kinds(); len(got) != 1 || got[0] != contract.BreakLink {
		t.Errorf("anchor hash changed: %v, want one link break", got)
	}
}
