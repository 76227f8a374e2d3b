package plugin

import (
	"context"
	"testing"
)

// The golden entries were produced by internal/event.Canonical and
// internal/auditchain.Hash; reproducing them from their JSON, and from the
// jsonb PostgreSQL hands back, proves the plugin hashes the same bytes.
func TestCanonicalMatchesAgent(t *testing.T) {
	e := newEnv(t)
	for i, g := range loadGolden(t) {
		got, err := canonicalFromJSON([]byte(g.Canonical))
		if err != nil || string(got) != g.Canonical {
			t.Fatalf("entry %d: %v\n got %s\nwant %s", i, err, got, g.Canonical)
		}
		var viaJSONB []byte
		if err := e.conn.QueryRow(context.Background(), `SELECT $1::jsonb::text`, g.Canonical).Scan(&viaJSONB); err != nil {
			t.Fatal(err)
		}
		if string(viaJSONB) == g.Canonical {
			t.Fatalf("entry %d: jsonb kept the bytes; the test would prove nothing", i)
		}
		got, err = canonicalFromJSON(viaJSONB)
		if err != nil || string(got) != g.Canonical {
			t.Fatalf("entry %d via jsonb: %v\n got %s\nwant %s", i, err, got, g.Canonical)
		}
		if h := chainHash(g.PrevHash, got); h != g.Hash {
			t.Fatalf("entry %d: hash %s, want %s", i, h, g.Hash)
		}
	}
	for _, bad := range []string{`[]`, `{"a":1.5}`, `{"a":{"b":1}}`, `{"a":[1]}`, `{"a":null}`, `{"a":1e3}`, `nope`} {
		if _, err := canonicalFromJSON([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}
