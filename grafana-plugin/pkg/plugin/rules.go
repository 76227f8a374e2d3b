package plugin

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/contract/rules"
)

// Bounds of a rule set, as the tables' CHECKs.
const (
	maxRulesLen   = 1 << 20
	maxSelectorKV = 256
	maxSelector   = 20
)

// RuleScopes are the scopes a rule set may have.
var RuleScopes = []string{contract.RuleScopeGlobal, contract.RuleScopeGroup, contract.RuleScopeHost}

var ruleSetName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// FieldError is one problem with one field of a rule set edit. For the
// rules field, Line and Key place it in the YAML as `tripwire validate`
// does.
type FieldError struct {
	Field   string `json:"field"` // name, scope, selector, host_name, rules, note, base_version
	Line    int    `json:"line,omitempty"`
	Key     string `json:"key,omitempty"` // e.g. rules[0].severity
	Message string `json:"message"`
}

// FieldErrors is a refused edit: a 400 whose body lists every problem.
type FieldErrors []FieldError

func (fe FieldErrors) Error() string {
	var b strings.Builder
	for i, e := range fe {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(e.Field)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		if e.Key != "" {
			b.WriteString(": " + e.Key)
		}
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// orNil is fe as an error, nil when empty.
func (fe FieldErrors) orNil() error {
	if len(fe) == 0 {
		return nil
	}
	return fe
}

func fieldError(field, format string, a ...any) FieldErrors {
	return FieldErrors{{Field: field, Message: fmt.Sprintf(format, a...)}}
}

// RuleSetEdit is the body of POST /rules (create), PUT /rules/{id} (a new
// version; every field but name is the new content) and POST /rules/check.
type RuleSetEdit struct {
	Name        string            `json:"name"`         // create only; a set's name never changes
	BaseVersion int               `json:"base_version"` // PUT: the version the edit was made from
	Scope       string            `json:"scope"`
	Selector    map[string]string `json:"selector"`
	HostName    string            `json:"host_name"`
	Enabled     *bool             `json:"enabled"` // default true on create; required on PUT
	Rules       string            `json:"rules"`
	Note        string            `json:"note"`
}

// check validates e as the content of a set, the rules with the validator of
// `tripwire validate` (without the checks that need the host they run on),
// and returns every problem. create says whether the name is checked.
func (e *RuleSetEdit) check(create bool) FieldErrors {
	var fe FieldErrors
	add := func(field, format string, a ...any) {
		fe = append(fe, FieldError{Field: field, Message: fmt.Sprintf(format, a...)})
	}
	if create && !ruleSetName.MatchString(e.Name) {
		add("name", "want 1 to 128 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	switch e.Scope {
	case contract.RuleScopeGlobal:
		if len(e.Selector) > 0 || e.HostName != "" {
			add("scope", "a global set takes no selector and no host")
		}
	case contract.RuleScopeGroup:
		if e.HostName != "" {
			add("host_name", "only a host set names a host")
		}
		if len(e.Selector) == 0 {
			add("selector", "a group set needs at least one host attribute to match, e.g. %s=linux", contract.ResourceOSType)
		}
		if len(e.Selector) > maxSelector {
			add("selector", "at most %d attributes", maxSelector)
		}
		keys := make([]string, 0, len(e.Selector))
		for k := range e.Selector {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			v := e.Selector[k]
			if strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" || len(k) > maxSelectorKV || len(v) > maxSelectorKV {
				add("selector", "%q=%q: want a non-empty attribute name and value of at most %d bytes", k, v, maxSelectorKV)
			}
		}
	case contract.RuleScopeHost:
		if len(e.Selector) > 0 {
			add("selector", "only a group set has a selector")
		}
		if strings.TrimSpace(e.HostName) == "" || len(e.HostName) > maxFilterLen {
			add("host_name", "a host set needs the host's name (its certificate CN)")
		}
	default:
		add("scope", "unknown scope %q (want one of %s)", e.Scope, strings.Join(RuleScopes, ", "))
	}
	for _, f := range [][2]string{{"name", e.Name}, {"host_name", e.HostName}, {"rules", e.Rules}, {"note", e.Note}} {
		if strings.IndexByte(f[1], 0) >= 0 {
			add(f[0], "contains a NUL character")
		}
	}
	for k, v := range e.Selector {
		if strings.IndexByte(k+v, 0) >= 0 {
			add("selector", "contains a NUL character")
		}
	}
	if len(e.Note) > maxNoteLen {
		add("note", "longer than %d bytes", maxNoteLen)
	}
	if len(e.Rules) > maxRulesLen {
		add("rules", "longer than %d bytes", maxRulesLen)
		return fe
	}
	parsed, err := rules.Parse("rules", []byte(e.Rules), nil)
	var re *rules.Error
	for _, one := range unjoin(err) {
		if errors.As(one, &re) {
			fe = append(fe, FieldError{Field: "rules", Line: re.Line, Key: re.Key, Message: re.Msg})
		} else {
			add("rules", "%v", one)
		}
	}
	if err == nil && len(parsed) == 0 {
		add("rules", "a rule set needs at least one rule")
	}
	return fe
}

// unjoin splits an errors.Join result into its errors.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func (e *RuleSetEdit) ruleSet() RuleSet {
	rs := RuleSet{Name: e.Name, Scope: e.Scope, Selector: e.Selector, HostName: e.HostName,
		Enabled: e.Enabled == nil || *e.Enabled, Rules: e.Rules, Note: e.Note}
	if rs.Scope != contract.RuleScopeGroup {
		rs.Selector = nil
	}
	return rs
}

// registerRuleRoutes adds the rule set routes to registerRoutes' mux. Reads
// need the Viewer role, writes the Editor role; every write is attributed
// to the Grafana user of the request.
func (d *Datasource) registerRuleRoutes(mux *http.ServeMux) {
	// GET /api/v1/rules?host= → {"rule_sets": [...]}: the current version of every set (of the sets taking in host), without rules
	mux.HandleFunc("GET /api/v1/rules", d.read(d.handleRuleSets))
	// POST /api/v1/rules (Editor): RuleSetEdit → the new set at version 1
	mux.HandleFunc("POST /api/v1/rules", d.read(d.handleCreateRuleSet))
	// POST /api/v1/rules/check?id=: RuleSetEdit (of set id, or a new one) → {"errors": [...], "hosts": [...]}, saves nothing
	mux.HandleFunc("POST /api/v1/rules/check", d.read(d.handleCheckRuleSet))
	// GET /api/v1/rules/{id}?version=
	mux.HandleFunc("GET /api/v1/rules/{id}", d.read(d.handleRuleSet))
	// PUT /api/v1/rules/{id} (Editor): RuleSetEdit with base_version → the new version
	mux.HandleFunc("PUT /api/v1/rules/{id}", d.read(d.handleUpdateRuleSet))
	// POST /api/v1/rules/{id}/disable (Editor): {"base_version","note"}, both optional → the new version
	mux.HandleFunc("POST /api/v1/rules/{id}/disable", d.read(d.handleEnableRuleSet(false)))
	// POST /api/v1/rules/{id}/enable (Editor): as disable
	mux.HandleFunc("POST /api/v1/rules/{id}/enable", d.read(d.handleEnableRuleSet(true)))
	// GET /api/v1/rules/{id}/versions → {"versions": [...]}, newest first
	mux.HandleFunc("GET /api/v1/rules/{id}/versions", d.read(d.handleRuleSetVersions))
	// GET /api/v1/rules/{id}/diff?from=&to= (default: the current version against the one before)
	mux.HandleFunc("GET /api/v1/rules/{id}/diff", d.read(d.handleRuleSetDiff))
	// GET /api/v1/rules/{id}/hosts → {"enabled", "hosts": [...]}: the known hosts the set applies to
	mux.HandleFunc("GET /api/v1/rules/{id}/hosts", d.read(d.handleRuleSetHosts))
}

// ruleUser returns the request's Grafana user if its role may read rule
// sets (Viewer and above) or, with write, change them (Editor and above).
func ruleUser(r *http.Request, write bool) (*backend.User, error) {
	if write {
		return editor(r, "changing rule sets")
	}
	u := backend.PluginConfigFromContext(r.Context()).User
	if u == nil || (u.Role != "Viewer" && u.Role != "Editor" && u.Role != "Admin") {
		return nil, fmt.Errorf("%w: reading rule sets needs the Viewer role or above", ErrForbidden)
	}
	return u, nil
}

func ruleSetID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id < 1 {
		return 0, badRequest("rule set id: want a positive integer")
	}
	return id, nil
}

func (d *Datasource) handleRuleSets(r *http.Request) (any, error) {
	if _, err := ruleUser(r, false); err != nil {
		return nil, err
	}
	p := newParams(r, "host")
	host := p.one("host")
	if p.err != nil {
		return nil, p.err
	}
	if err := checkText("host", host, maxFilterLen); err != nil {
		return nil, err
	}
	sets, err := d.store.RuleSets(r.Context(), host)
	if err != nil {
		return nil, err
	}
	if sets == nil {
		sets = []RuleSet{}
	}
	return map[string]any{"rule_sets": sets}, nil
}

func (d *Datasource) handleRuleSet(r *http.Request) (any, error) {
	if _, err := ruleUser(r, false); err != nil {
		return nil, err
	}
	id, err := ruleSetID(r)
	if err != nil {
		return nil, err
	}
	p := newParams(r, "version")
	version := p.version("version")
	if p.err != nil {
		return nil, p.err
	}
	return d.store.RuleSet(r.Context(), id, version)
}

// version reads an optional positive version number; 0 when absent.
func (p *params) version(name string) int {
	s := p.one(name)
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		p.fail(badRequest("%s: want a positive integer", name))
	}
	return n
}

func (d *Datasource) handleCreateRuleSet(r *http.Request) (any, error) {
	u, err := ruleUser(r, true)
	if err != nil {
		return nil, err
	}
	if p := newParams(r); p.err != nil {
		return nil, p.err
	}
	var e RuleSetEdit
	if err := decodeBody(r, &e, maxRulesLen+64*1024, "a JSON object"); err != nil {
		return nil, err
	}
	if e.BaseVersion != 0 {
		return nil, fieldError("base_version", "a new set has no base version")
	}
	if fe := e.check(true); len(fe) > 0 {
		return nil, fe
	}
	rs := e.ruleSet()
	rs.Author = u.Login
	if fe, err := d.store.RuleSetClashes(r.Context(), &rs); err != nil || len(fe) > 0 {
		return nil, errors.Join(err, fe.orNil())
	}
	id, err := d.store.CreateRuleSet(r.Context(), &rs)
	if err != nil {
		return nil, err
	}
	log.DefaultLogger.Info("rule set created", "rule_set", rs.Name, "version", 1, "user.name", u.Login)
	return d.store.RuleSet(r.Context(), id, 0)
}

func (d *Datasource) handleUpdateRuleSet(r *http.Request) (any, error) {
	u, err := ruleUser(r, true)
	if err != nil {
		return nil, err
	}
	id, err := ruleSetID(r)
	if err != nil {
		return nil, err
	}
	if p := newParams(r); p.err != nil {
		return nil, p.err
	}
	var e RuleSetEdit
	if err := decodeBody(r, &e, maxRulesLen+64*1024, "a JSON object"); err != nil {
		return nil, err
	}
	fe := e.check(false)
	if e.BaseVersion < 1 {
		fe = append(fe, FieldError{Field: "base_version", Message: "required: the version the edit was made from"})
	}
	if e.Enabled == nil {
		fe = append(fe, FieldError{Field: "enabled", Message: "required"})
	}
	if len(fe) > 0 {
		return nil, fe
	}
	cur, err := d.store.RuleSet(r.Context(), id, 0)
	if err != nil {
		return nil, err
	}
	if e.Name != "" && e.Name != cur.Name {
		return nil, fieldError("name", "a rule set's name never changes (it is %q)", cur.Name)
	}
	rs := e.ruleSet()
	rs.ID, rs.Name, rs.Author = id, cur.Name, u.Login
	return d.saveVersion(r, e.BaseVersion, &rs)
}

// saveVersion saves rs as the version after base and returns the set's
// current version.
func (d *Datasource) saveVersion(r *http.Request, base int, rs *RuleSet) (any, error) {
	if fe, err := d.store.RuleSetClashes(r.Context(), rs); err != nil || len(fe) > 0 {
		return nil, errors.Join(err, fe.orNil())
	}
	if err := d.store.UpdateRuleSet(r.Context(), base, rs); err != nil {
		return nil, err
	}
	saved, err := d.store.RuleSet(r.Context(), rs.ID, 0)
	if err != nil {
		return nil, err
	}
	if saved.Version != base {
		log.DefaultLogger.Info("rule set changed", "rule_set", saved.Name, "version", saved.Version,
			"enabled", saved.Enabled, "user.name", rs.Author)
	}
	return saved, nil
}

// handleEnableRuleSet disables (or enables) a set: a new version with only
// the enabled flag changed. Without base_version it applies to the current
// version, whatever it is.
func (d *Datasource) handleEnableRuleSet(enabled bool) handlerFunc {
	return func(r *http.Request) (any, error) {
		u, err := ruleUser(r, true)
		if err != nil {
			return nil, err
		}
		id, err := ruleSetID(r)
		if err != nil {
			return nil, err
		}
		if p := newParams(r); p.err != nil {
			return nil, p.err
		}
		var body struct {
			BaseVersion int    `json:"base_version"`
			Note        string `json:"note"`
		}
		if err := decodeBody(r, &body, 2*maxNoteLen+1024, "a JSON object"); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if len(body.Note) > maxNoteLen {
			return nil, fieldError("note", "longer than %d bytes", maxNoteLen)
		}
		cur, err := d.store.RuleSet(r.Context(), id, 0)
		if err != nil {
			return nil, err
		}
		base := body.BaseVersion
		if base == 0 {
			base = cur.Version
		}
		rs := cur
		rs.Enabled, rs.Author, rs.Note = enabled, u.Login, body.Note
		return d.saveVersion(r, base, &rs)
	}
}

func (d *Datasource) handleRuleSetVersions(r *http.Request) (any, error) {
	if _, err := ruleUser(r, false); err != nil {
		return nil, err
	}
	id, err := ruleSetID(r)
	if err != nil {
		return nil, err
	}
	if p := newParams(r); p.err != nil {
		return nil, p.err
	}
	versions, err := d.store.RuleSetVersions(r.Context(), id)
	if err != nil {
		return nil, err
	}
	return map[string]any{"versions": versions}, nil
}

// RuleSetDiff compares two versions of a set: the fields that changed and
// a line diff of the rules.
type RuleSetDiff struct {
	From    *RuleSet      `json:"from"` // null: the set did not exist (to is version 1)
	To      RuleSet       `json:"to"`
	Changes []FieldChange `json:"changes"`
	Lines   []DiffLine    `json:"lines"`
}

// FieldChange is one field that differs between two versions.
type FieldChange struct {
	Field string `json:"field"`
	From  string `json:"from"`
	To    string `json:"to"`
}

func (d *Datasource) handleRuleSetDiff(r *http.Request) (any, error) {
	if _, err := ruleUser(r, false); err != nil {
		return nil, err
	}
	id, err := ruleSetID(r)
	if err != nil {
		return nil, err
	}
	p := newParams(r, "from", "to")
	from, to := p.version("from"), p.version("to")
	if p.err != nil {
		return nil, p.err
	}
	newer, err := d.store.RuleSet(r.Context(), id, to)
	if err != nil {
		return nil, err
	}
	if from == 0 {
		from = newer.Version - 1
	}
	out := RuleSetDiff{To: newer, Changes: []FieldChange{}}
	old := RuleSet{}
	if from >= 1 {
		o, err := d.store.RuleSet(r.Context(), id, from)
		if err != nil {
			return nil, err
		}
		out.From, old = &o, o
	}
	change := func(field, a, b string) {
		if a != b {
			out.Changes = append(out.Changes, FieldChange{Field: field, From: a, To: b})
		}
	}
	if out.From != nil {
		change("scope", old.Scope, newer.Scope)
		change("selector", selectorText(old.Selector), selectorText(newer.Selector))
		change("host_name", old.HostName, newer.HostName)
		change("enabled", strconv.FormatBool(old.Enabled), strconv.FormatBool(newer.Enabled))
	}
	out.Lines = diffLines(old.Rules, newer.Rules)
	return out, nil
}

// selectorText writes a selector as sorted key=value pairs.
func selectorText(sel map[string]string) string {
	var pairs []string
	for k, v := range sel {
		pairs = append(pairs, k+"="+v)
	}
	slices.Sort(pairs)
	return strings.Join(pairs, ", ")
}

func (d *Datasource) handleRuleSetHosts(r *http.Request) (any, error) {
	if _, err := ruleUser(r, false); err != nil {
		return nil, err
	}
	id, err := ruleSetID(r)
	if err != nil {
		return nil, err
	}
	if p := newParams(r); p.err != nil {
		return nil, p.err
	}
	rs, err := d.store.RuleSet(r.Context(), id, 0)
	if err != nil {
		return nil, err
	}
	hosts, err := d.store.RuleSetHosts(r.Context(), &rs)
	if err != nil {
		return nil, err
	}
	if hosts == nil {
		hosts = []RuleSetHost{}
	}
	return map[string]any{"enabled": rs.Enabled, "hosts": hosts}, nil
}

// handleCheckRuleSet validates an edit and lists the hosts it would apply
// to, saving nothing: the editor calls it as the user types.
func (d *Datasource) handleCheckRuleSet(r *http.Request) (any, error) {
	if _, err := ruleUser(r, false); err != nil {
		return nil, err
	}
	p := newParams(r, "id")
	var id int64
	if s := p.one("id"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			p.fail(badRequest("id: want a positive integer"))
		}
		id = n
	}
	if p.err != nil {
		return nil, p.err
	}
	var e RuleSetEdit
	if err := decodeBody(r, &e, maxRulesLen+64*1024, "a JSON object"); err != nil {
		return nil, err
	}
	fe := e.check(id == 0)
	if fe == nil {
		fe = FieldErrors{}
	}
	hosts := []RuleSetHost{}
	if !slices.ContainsFunc(fe, func(f FieldError) bool {
		return f.Field == "scope" || f.Field == "selector" || f.Field == "host_name"
	}) {
		rs := e.ruleSet()
		rs.ID = id
		found, err := d.store.RuleSetHosts(r.Context(), &rs)
		if err != nil {
			return nil, err
		}
		if found != nil {
			hosts = found
		}
		if len(fe) == 0 {
			clashes, err := d.store.RuleSetClashes(r.Context(), &rs)
			if err != nil {
				return nil, err
			}
			fe = append(fe, clashes...)
		}
	}
	return map[string]any{"errors": fe, "hosts": hosts}, nil
}
