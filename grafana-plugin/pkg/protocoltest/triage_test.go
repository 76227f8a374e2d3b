package protocoltest

import (
	"context"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
)

// TestTriageOverProtocol: the user Grafana puts in the plugin context
// reaches the triage route through the real binary and gRPC: a Viewer is
// refused, an Editor's change is recorded under the login Grafana sent.
func TestTriageOverProtocol(t *testing.T) {
	dsn := pgtest.NewSchemaDB(t)
	conn := seed(t, dsn)
	g := start(t, settingsFor(dsn))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	to, from := backend.ToProto(), backend.FromProto()

	post := func(login, role, body string) (int, string) {
		pctx := g.pctx
		pctx.User = &backend.User{Login: login, Role: role}
		path := "/api/v1/alerts/0190d000-0000-7000-8000-000000000002/triage?host=web-01"
		u, _ := url.Parse(path)
		st, err := g.resource.CallResource(ctx, to.CallResourceRequest(&backend.CallResourceRequest{
			PluginContext: pctx, Path: strings.TrimPrefix(u.Path, "/"), URL: strings.TrimPrefix(path, "/"),
			Method: "POST", Body: []byte(body), Headers: map[string][]string{"Content-Type": {"application/json"}},
		}))
		if err != nil {
			t.Fatal(err)
		}
		var status int
		var out []byte
		for {
			r, err := st.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			rr := from.CallResourceResponse(r)
			if rr.Status != 0 {
				status = rr.Status
			}
			out = append(out, rr.Body...)
		}
		return status, string(out)
	}
	if status, body := post("viewer-vic", "Viewer", `{"state":"ACKNOWLEDGED"}`); status != 403 {
		t.Fatalf("Viewer: %d %s", status, body)
	}
	if status, body := post("editor-eve", "Editor", `{"state":"ACKNOWLEDGED","note":"known scanner"}`); status != 200 || !strings.Contains(body, `"updated_by":"editor-eve"`) {
		t.Fatalf("Editor: %d %s", status, body)
	}
	rows, err := conn.Query(ctx, `SELECT actor || ' ' || action FROM alert_triage_history ORDER BY entry_id`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		got = append(got, s)
	}
	if strings.Join(got, ", ") != "editor-eve state, editor-eve note" {
		t.Fatalf("history: %v", got)
	}
}
