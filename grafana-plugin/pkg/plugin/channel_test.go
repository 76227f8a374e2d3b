package plugin

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-plugin-sdk-go/live"
)

// checkChannel asserts what Grafana requires of every channel the plugin
// hands out (live.ParseChannel is the SDK's copy of Grafana's own check) and
// that the backend decodes the path back to the filter it was made from.
func checkChannel(t testing.TB, r *channelRegistry, uid string, f StreamFilter) string {
	t.Helper()
	path := r.ChannelPath(uid, f)
	ch := "ds/" + uid + "/" + path
	parsed, err := live.ParseChannel(ch)
	if err != nil {
		t.Fatalf("Grafana Live refuses %q (%d chars) for %+v: %v", ch, len(ch), f, err)
	}
	if parsed.Scope != live.ScopeDatasource || parsed.Namespace != uid || parsed.Path != path {
		t.Fatalf("%q parses as %+v", ch, parsed)
	}
	back, err := r.Filter(path)
	if err != nil {
		t.Fatalf("backend refuses its own path %q: %v", path, err)
	}
	if fmt.Sprintf("%+v", back) != fmt.Sprintf("%+v", f.canonical()) {
		t.Fatalf("%q decodes to %+v, want %+v", path, back, f.canonical())
	}
	return path
}

func TestChannelPaths(t *testing.T) {
	var r channelRegistry
	uid := "P0123456789abcdef0123456789abcdef012345" // 40 characters, Grafana's longest uid
	long := strings.Repeat("h", maxFilterLen)
	cases := []struct {
		f      StreamFilter
		hashed bool
	}{
		{StreamFilter{}, false},
		{StreamFilter{Severities: []string{"WARN", "CRITICAL"}}, false}, // the Live page's "WARN and up"
		{StreamFilter{Hosts: []string{"web-01.example.com", "db 01"}, Types: []string{"file", "process"}}, false},
		{StreamFilter{Rules: []string{"read of ~/.aws/credentials", "nc exec"}}, false},
		{StreamFilter{Rules: []string{"règle été"}}, false},
		{StreamFilter{Hosts: []string{long}}, true},
		{StreamFilter{Hosts: slices.Repeat([]string{"a"}, 50)}, false},        // duplicates collapse
		{StreamFilter{Severities: []string{"CRITICAL"}, Triage: true}, false}, // the Live page's, with triage changes
		{StreamFilter{Hosts: []string{long}, Triage: true}, true},
	}
	for _, c := range cases {
		p := checkChannel(t, &r, uid, c.f)
		if got := strings.HasPrefix(p, c.f.root()+"/f="); got != c.hashed {
			t.Errorf("%+v: path %q, hashed=%v want %v", c.f, p, got, c.hashed)
		}
	}
	// One filter set is one channel, whatever the order it came in.
	a := r.ChannelPath(uid, StreamFilter{Hosts: []string{"b", "a"}, Severities: []string{"WARN", "CRITICAL"}})
	b := r.ChannelPath(uid, StreamFilter{Hosts: []string{"a", "b", "a"}, Severities: []string{"CRITICAL", "WARN"}})
	if a != b {
		t.Errorf("same filter, two channels: %s, %s", a, b)
	}
	// With and without triage changes are two channels, hashed or not.
	if p, q := r.ChannelPath(uid, StreamFilter{Hosts: []string{long}}), r.ChannelPath(uid, StreamFilter{Hosts: []string{long}, Triage: true}); p == q {
		t.Errorf("triage changes or not, one channel %s", p)
	}
	// A hash another process handed out is not known here.
	var other channelRegistry
	p := r.ChannelPath(uid, StreamFilter{Hosts: []string{long}})
	if _, err := other.Filter(p); err == nil {
		t.Error("unknown hash accepted")
	}
	// The registry is bounded.
	for i := range maxHashedChannels + 10 {
		r.ChannelPath(uid, StreamFilter{Hosts: []string{fmt.Sprintf("%s%d", long[:200], i)}})
	}
	if len(r.byKey) != maxHashedChannels || len(r.order) != maxHashedChannels {
		t.Errorf("registry holds %d/%d entries, bound %d", len(r.byKey), len(r.order), maxHashedChannels)
	}
}

// FuzzChannelPath feeds every kind of filter the plugin can turn into a
// channel (any valid host and rule values, any subset of types and
// severities, any uid Grafana could give) to the SDK's live.ParseChannel and
// back through the backend's decoder. Run it for minutes with
//
//	go test ./pkg/plugin -run '^$' -fuzz FuzzChannelPath -fuzztime 2m
func FuzzChannelPath(f *testing.F) {
	f.Add("web-01", "db 01", "shadow-read", "read of ~/.aws/credentials", uint8(0b1010), uint8(0b110), "tripwire")
	f.Add("", "", "", "", uint8(0), uint8(0), "P1")
	f.Add(strings.Repeat("é", 128), "x", "r", "", uint8(0xff), uint8(0xff), strings.Repeat("u", 40))
	f.Fuzz(func(t *testing.T, h1, h2, r1, r2 string, typeBits, sevBits uint8, uid string) {
		if uid == "" || len(uid) > 40 || !validUID(uid) {
			return // Grafana never names a datasource so
		}
		var sf StreamFilter
		for _, v := range []string{h1, h2} {
			if v != "" {
				sf.Hosts = append(sf.Hosts, v)
			}
		}
		for _, v := range []string{r1, r2} {
			if v != "" {
				sf.Rules = append(sf.Rules, v)
			}
		}
		for i, v := range Types {
			if typeBits&(1<<i) != 0 {
				sf.Types = append(sf.Types, v)
			}
		}
		for i, v := range Severities {
			if sevBits&(1<<i) != 0 {
				sf.Severities = append(sf.Severities, v)
			}
		}
		ff := Filter{Hosts: sf.Hosts, Types: sf.Types, Severities: sf.Severities, Rules: sf.Rules}
		if ff.Validate() != nil {
			return // refused with a 400 before any channel is made
		}
		var r channelRegistry
		checkChannel(t, &r, uid, sf)
	})
}

func validUID(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
