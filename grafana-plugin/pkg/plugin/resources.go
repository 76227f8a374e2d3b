package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"slices"
)

// The routes are served under the datasource's resource URL,
// /api/datasources/uid/<uid>/resources/api/v1/..., which Grafana lets only
// callers holding datasources:query on that datasource reach (a Viewer by
// default, any role or service account granted it through RBAC, an
// IdP-issued JWT mapped to such a user). Authorisation is Grafana's: no role
// is compared here, except for the writes: retiring a host needs the Admin
// role, changing an alert's triage the Editor role (triage.go), and the
// rule sets, which say what every host watches, need the Viewer role to read
// and the Editor role to change (rules.go). Every other
// route is a read, every other method gets 405 (with Allow) from the mux, an
// unknown path 404.
func (d *Datasource) registerRoutes(mux *http.ServeMux) {
	// GET /api/v1/alerts?host=&type=&severity=&rule=&state=&assignee=&q=&from=&to=&limit=&cursor=
	mux.HandleFunc("GET /api/v1/alerts", d.read(d.handleAlerts))
	// GET /api/v1/alerts/{id}?host=
	mux.HandleFunc("GET /api/v1/alerts/{id}", d.read(d.handleAlert))
	// GET /api/v1/hosts → hosts, and the identities the collector refused (refused_hosts)
	mux.HandleFunc("GET /api/v1/hosts", d.read(d.handleHosts))
	// POST /api/v1/hosts/{name}/retire (Admin): no more offline alerts; a new certificate re-activates
	mux.HandleFunc("POST /api/v1/hosts/{name}/retire", d.read(d.handleRetire))
	// GET /api/v1/audit?host=&from=&to=&limit=&cursor=
	mux.HandleFunc("GET /api/v1/audit", d.read(d.handleAudit))
	// GET /api/v1/audit/verify?host=
	mux.HandleFunc("GET /api/v1/audit/verify", d.read(d.handleVerify))
	// GET /api/v1/stats?from=&to=
	mux.HandleFunc("GET /api/v1/stats", d.read(d.handleStats))
	// GET /api/v1/live?host=&type=&severity=&rule= → {"channel": "ds/<uid>/live/..."}
	mux.HandleFunc("GET /api/v1/live", d.read(d.handleLive))
	d.registerTriageRoutes(mux)
	d.registerRuleRoutes(mux)
}

// handlerFunc returns the value to encode as JSON, or an error to map.
type handlerFunc func(r *http.Request) (any, error)

// read wraps a read-only handler: datasource configured, errors mapped.
func (d *Datasource) read(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := d.ready(); err != nil {
			writeError(w, http.StatusServiceUnavailable, "datasource not configured: "+err.Error())
			return
		}
		v, err := h(r)
		var fields FieldErrors
		switch {
		case err == nil:
			writeJSON(w, http.StatusOK, v)
		case errors.Is(err, ErrBadRequest):
			writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": "))
		case errors.Is(err, ErrNotFound):
			writeError(w, http.StatusNotFound, "not found")
		case errors.Is(err, ErrForbidden):
			writeError(w, http.StatusForbidden, strings.TrimPrefix(err.Error(), ErrForbidden.Error()+": "))
		case errors.As(err, &fields):
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": fields.Error(), "fields": fields})
		case errors.Is(err, ErrConflict):
			writeError(w, http.StatusConflict, strings.TrimPrefix(err.Error(), ErrConflict.Error()+": "))
		case errors.Is(err, ErrAmbiguous):
			writeError(w, http.StatusConflict, strings.TrimPrefix(err.Error(), ErrAmbiguous.Error()+": "))
		default:
			log.DefaultLogger.Error("resource request failed", "path", r.URL.Path, "error", err)
			writeError(w, http.StatusInternalServerError, "internal error; see the plugin log")
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

// params reads a query string strictly: unknown parameters and repeated
// single-valued ones are 400s, so a misspelt filter is never ignored.
type params struct {
	v   url.Values
	err error
}

// decodeBody reads a request body of at most limit bytes holding one JSON
// object, want, into v strictly: unknown fields, trailing data and a larger
// body are 400s. An empty body is a 400 that is also io.EOF, for routes
// whose body is optional.
func decodeBody(r *http.Request, v any, limit int, want string) error {
	body := io.Reader(http.NoBody) // the SDK's adapter leaves Body nil for an empty body
	if r.Body != nil {
		body = r.Body
	}
	b, err := io.ReadAll(io.LimitReader(body, int64(limit)+1))
	if err != nil {
		return fmt.Errorf("reading body: %w", err)
	}
	if len(b) > limit {
		return badRequest("body: larger than %d bytes", limit)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %w", badRequest("body: want %s, got nothing", want), io.EOF)
	} else if err != nil {
		return badRequest("body: want %s: %v", want, err)
	}
	if dec.More() {
		return badRequest("body: want one JSON object, got more")
	}
	return nil
}

func newParams(r *http.Request, allowed ...string) *params {
	v, err := url.ParseQuery(r.URL.RawQuery)
	p := &params{v: v}
	if err != nil {
		p.err = badRequest("malformed query string")
	}
	for k := range p.v {
		if !slices.Contains(allowed, k) {
			p.err = badRequest("unknown parameter %q", k)
		}
	}
	return p
}

func (p *params) one(name string) string {
	vs := p.v[name]
	if len(vs) > 1 && p.err == nil {
		p.err = badRequest("%s: given more than once", name)
	}
	if len(vs) == 0 {
		return ""
	}
	return vs[0]
}

// list accepts repeated parameters and comma-separated values.
func (p *params) list(name string) []string {
	var out []string
	for _, v := range p.v[name] {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
	}
	return out
}

// time accepts RFC 3339 or Unix milliseconds (what Grafana's time range uses).
func (p *params) time(name string) time.Time {
	s := p.one(name)
	if s == "" {
		return time.Time{}
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms < 0 || ms > 1e15 {
			p.fail(badRequest("%s: out of range", name))
		}
		return time.UnixMilli(ms).UTC()
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		p.fail(badRequest("%s: want RFC 3339 or Unix milliseconds", name))
	}
	return t
}

func (p *params) limit() int {
	s := p.one("limit")
	if s == "" {
		return DefaultLimit
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxLimit {
		p.fail(badRequest("limit: must be an integer in 1..%d", MaxLimit))
	}
	return n
}

func (p *params) fail(err error) {
	if p.err == nil {
		p.err = err
	}
}

func (d *Datasource) handleAlerts(r *http.Request) (any, error) {
	p := newParams(r, "host", "type", "severity", "rule", "state", "assignee", "q", "from", "to", "limit", "cursor")
	f := Filter{Hosts: p.list("host"), Types: p.list("type"), Severities: p.list("severity"),
		Rules: p.list("rule"), States: p.list("state"), Assignee: p.one("assignee"),
		Text: p.one("q"), From: p.time("from"), To: p.time("to")}
	limit := p.limit()
	var cursor *Cursor
	if c := p.one("cursor"); c != "" {
		cur, err := DecodeCursor(c)
		p.fail(err)
		cursor = &cur
	}
	if p.err != nil {
		return nil, p.err
	}
	return d.store.ListAlerts(r.Context(), &f, limit, cursor, false)
}

func (d *Datasource) handleAlert(r *http.Request) (any, error) {
	p := newParams(r, "host")
	if p.err != nil {
		return nil, p.err
	}
	return d.store.GetAlert(r.Context(), r.PathValue("id"), p.one("host"))
}

func (d *Datasource) handleHosts(r *http.Request) (any, error) {
	if p := newParams(r); p.err != nil {
		return nil, p.err
	}
	hosts, err := d.store.Hosts(r.Context())
	if err != nil {
		return nil, err
	}
	refused, err := d.store.RefusedHosts(r.Context())
	if err != nil {
		return nil, err
	}
	return map[string]any{"hosts": hosts, "refused_hosts": refused, "offline_after_seconds": d.settings.OfflineAfter().Seconds()}, nil
}

func (d *Datasource) handleAudit(r *http.Request) (any, error) {
	p := newParams(r, "host", "from", "to", "limit", "cursor")
	host, from, to, limit := p.one("host"), p.time("from"), p.time("to"), p.limit()
	var before int64
	if c := p.one("cursor"); c != "" {
		n, err := strconv.ParseInt(c, 10, 64)
		if err != nil || n < 1 {
			p.fail(badRequest("cursor: malformed"))
		}
		before = n
	}
	if p.err != nil {
		return nil, p.err
	}
	return d.store.AuditEntries(r.Context(), host, from, to, limit, before)
}

func (d *Datasource) handleVerify(r *http.Request) (any, error) {
	p := newParams(r, "host")
	host := p.one("host")
	if p.err != nil {
		return nil, p.err
	}
	return d.store.VerifyChain(r.Context(), host)
}

func (d *Datasource) handleStats(r *http.Request) (any, error) {
	p := newParams(r, "from", "to")
	from, to := p.time("from"), p.time("to")
	if p.err != nil {
		return nil, p.err
	}
	if to.IsZero() {
		to = time.Now().UTC()
	}
	if from.IsZero() {
		from = to.Add(-24 * time.Hour)
	}
	return d.store.Stats(r.Context(), from, to)
}

// handleLive names the Grafana Live channel for a filter. The backend alone
// encodes channel paths (channel.go), so the browser subscribes to exactly
// what SubscribeStream and RunStream decode.
func (d *Datasource) handleLive(r *http.Request) (any, error) {
	p := newParams(r, "host", "type", "severity", "rule")
	f := Filter{Hosts: p.list("host"), Types: p.list("type"), Severities: p.list("severity"), Rules: p.list("rule")}
	if p.err != nil {
		return nil, p.err
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	uid := ""
	if s := backend.PluginConfigFromContext(r.Context()).DataSourceInstanceSettings; s != nil {
		uid = s.UID
	}
	if uid == "" {
		return nil, badRequest("no datasource uid in the request context")
	}
	// The Live page's channel: new alerts and triage changes.
	path := d.channels.ChannelPath(uid, StreamFilter{Hosts: f.Hosts, Types: f.Types, Severities: f.Severities, Rules: f.Rules, Triage: true})
	return map[string]string{"channel": "ds/" + uid + "/" + path}, nil
}
