package tripwireexporter

import (
	"context"
	"slices"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
)

// wordsCodec's arrays are what PostgreSQL's array_recv reads back: words
// with spaces, quotes, braces and non-ASCII letters, none, and NULL; and the
// codec leaves every other text[] value to pgx.
func TestWordsCodec(t *testing.T) {
	ctx := context.Background()
	cfg, err := pgx.ParseConfig(pgtest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := registerWordsCodec(ctx, conn); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE w (i int, words text[] COLLATE "C")`); err != nil {
		t.Fatal(err)
	}
	want := []searchWords{{"cat", "etc shadow", `a"b`, `{x}`, "ünïcode", "NULL", ""}, {}, nil}
	rows := make([][]any, len(want))
	for i, w := range want {
		rows[i] = []any{i, w}
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"w"}, []string{"i", "words"}, pgx.CopyFromRows(rows)); err != nil {
		t.Fatal(err)
	}
	// A plain []string still goes through pgx's own plan.
	if _, err := conn.Exec(ctx, `INSERT INTO w VALUES (3, $1)`, []string{"plain", "words"}); err != nil {
		t.Fatal(err)
	}
	want = append(want, searchWords{"plain", "words"})
	for i, w := range want {
		var got []string
		var null, dims bool
		err := conn.QueryRow(ctx, `SELECT words, words IS NULL, array_ndims(words) IS NULL FROM w WHERE i = $1`, i).Scan(&got, &null, &dims)
		if err != nil {
			t.Fatal(err)
		}
		if null != (w == nil) || !slices.Equal(got, []string(w)) {
			t.Errorf("row %d: stored %q (NULL %v), want %q", i, got, null, w)
		}
		if w != nil && len(w) == 0 && !dims {
			t.Errorf("row %d: no words stored as an array with dimensions", i)
		}
	}
}
