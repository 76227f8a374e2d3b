package plugin

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"sync"

	"github.com/grafana/grafana-plugin-sdk-go/live"
)

// Grafana Live accepts a channel only if live.ParseChannel does: at most 160
// characters, and a path of [A-Za-z0-9_-/=.] only. So the backend alone
// builds channel paths (QueryData's meta.channel and GET /api/v1/live), and
// the frontend never encodes a filter itself:
//
//	alerts[/host=V]...[/type=V]...[/severity=V]...[/rule=V]...
//	live[/host=V]... (the same, with triage changes: the Live page's)
//
// one segment per value, keys in that order, values sorted and de-duplicated
// so one filter set is one channel (one RunStream) whatever order it was
// given in. A value keeps [A-Za-z0-9._-]; every other byte is "=HH" (upper
// case hex). The key ends at the first "=", so the rest decodes unambiguously.
// A filter whose channel would exceed 160 characters becomes alerts/f=<hash>,
// and the filter behind the hash is kept by the backend (channelRegistry).
const (
	maxChannelLen = 160
	streamRoot    = "alerts"
	liveRoot      = "live"
	hashKey       = "f"
)

var streamKeys = []string{"host", "type", "severity", "rule"}

func (f *StreamFilter) sets() [][]string {
	return [][]string{f.Hosts, f.Types, f.Severities, f.Rules}
}

// canonical sorts and de-duplicates every value set.
func (f StreamFilter) canonical() StreamFilter {
	norm := func(v []string) []string {
		if len(v) == 0 {
			return nil
		}
		out := slices.Clone(v)
		slices.Sort(out)
		return slices.Compact(out)
	}
	return StreamFilter{Hosts: norm(f.Hosts), Types: norm(f.Types), Severities: norm(f.Severities), Rules: norm(f.Rules),
		Triage: f.Triage}
}

func keepByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

func encodeValue(b *strings.Builder, v string) {
	const hexDigits = "0123456789ABCDEF"
	for i := 0; i < len(v); i++ {
		c := v[i]
		if keepByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('=')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
}

func decodeValue(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '=' {
			if !keepByte(c) {
				return "", false
			}
			b.WriteByte(c)
			continue
		}
		if i+3 > len(s) {
			return "", false
		}
		n, err := hex.DecodeString(s[i+1 : i+3])
		// Only the upper-case form the encoder writes, and only for bytes
		// it would not keep: one filter has exactly one path.
		if err != nil || strings.ToUpper(s[i+1:i+3]) != s[i+1:i+3] || keepByte(n[0]) {
			return "", false
		}
		b.WriteByte(n[0])
		i += 2
	}
	return b.String(), true
}

// encodedPath is the readable path of f (canonical), whatever its length.
func encodedPath(f StreamFilter) string {
	var b strings.Builder
	b.WriteString(f.root())
	for i, set := range f.sets() {
		for _, v := range set {
			b.WriteByte('/')
			b.WriteString(streamKeys[i])
			b.WriteByte('=')
			encodeValue(&b, v)
		}
	}
	return b.String()
}

func (f *StreamFilter) root() string {
	if f.Triage {
		return liveRoot
	}
	return streamRoot
}

// pathBudget is how long a path may be on datasource uid's channel,
// ds/<uid>/<path>.
func pathBudget(uid string) int { return maxChannelLen - len(live.ScopeDatasource) - len(uid) - 2 }

// channelRegistry keeps the filters behind hashed channel paths. It lives in
// the datasource instance: the channel is handed out by this backend process
// and subscribed through it. After a restart an old hash is unknown and the
// subscription is refused as not found; a panel refresh or the Live page's
// reconnect asks for the channel again and registers it anew.
type channelRegistry struct {
	mu    sync.Mutex
	byKey map[string]StreamFilter
	order []string // oldest first, to bound the map
}

// maxHashedChannels bounds the registry; each entry is at most a few KiB.
const maxHashedChannels = 4096

func (r *channelRegistry) put(key string, f StreamFilter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byKey == nil {
		r.byKey = map[string]StreamFilter{}
	}
	if _, ok := r.byKey[key]; ok {
		return
	}
	if len(r.order) >= maxHashedChannels {
		delete(r.byKey, r.order[0])
		r.order = r.order[1:]
	}
	r.byKey[key] = f
	r.order = append(r.order, key)
}

func (r *channelRegistry) get(key string) (StreamFilter, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.byKey[key]
	return f, ok
}

// ChannelPath is the path (after ds/<uid>/) of the channel carrying f on
// datasource uid: the readable form when the whole channel fits in 160
// characters, else a hash whose filter r keeps. f must be valid.
func (r *channelRegistry) ChannelPath(uid string, f StreamFilter) string {
	f = f.canonical()
	p := encodedPath(f)
	if len(p) <= pathBudget(uid) {
		return p
	}
	sum := sha256.Sum256([]byte(p))
	key := hex.EncodeToString(sum[:16])
	r.put(key, f)
	return f.root() + "/" + hashKey + "=" + key
}

// Filter resolves a channel path: the readable form is decoded, a hash is
// looked up.
func (r *channelRegistry) Filter(path string) (StreamFilter, error) {
	root, _, _ := strings.Cut(path, "/")
	if key, ok := strings.CutPrefix(path, root+"/"+hashKey+"="); ok && (root == streamRoot || root == liveRoot) {
		f, found := r.get(key)
		if !found {
			return f, badRequest("stream path: unknown filter hash %q; ask /api/v1/live for the channel again", key)
		}
		return f, nil
	}
	return ParseStreamPath(path)
}
