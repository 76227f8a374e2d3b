package tripwireexporter

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"

	"go.opentelemetry.io/collector/consumer/consumererror"

	"github.com/tripwire-sec/tripwire/contract/pgtest"
)

// A batch is split by host into lanes: every host in exactly one, always the
// same one, at most one lane per pool connection.
func TestLanesSplitByHost(t *testing.T) {
	e := startExporter(t, testConfig(pgtest.NewDB(t)+"&pool_max_conns=3"))
	var hosts []*hostBatch
	for i := range 20 {
		hosts = append(hosts, &hostBatch{name: fmt.Sprintf("web-%02d", i)})
	}
	laneOf := func(hosts []*hostBatch) map[string]int {
		lanes := e.lanes(hosts)
		if len(lanes) != 3 {
			t.Fatalf("%d lanes for a pool of 3 connections", len(lanes))
		}
		out := map[string]int{}
		for i, l := range lanes {
			for _, h := range l {
				if _, twice := out[h.name]; twice {
					t.Fatalf("%s in two lanes", h.name)
				}
				out[h.name] = i
			}
		}
		if len(out) != len(hosts) {
			t.Fatalf("%d of %d hosts in a lane", len(out), len(hosts))
		}
		return out
	}
	all := laneOf(hosts)
	if used := len(slices.Compact(slices.Sorted(maps.Values(all)))); used < 2 {
		t.Errorf("20 hosts in %d lane(s), want them spread", used)
	}
	// A later batch with some of the hosts: those that shared a lane still do.
	some := laneOf(hosts[5:12])
	for _, a := range hosts[5:12] {
		for _, b := range hosts[5:12] {
			if (all[a.name] == all[b.name]) != (some[a.name] == some[b.name]) {
				t.Errorf("%s and %s: together in one batch's lanes, apart in the other's", a.name, b.name)
			}
		}
	}

}

// A lane that may succeed on retry makes the batch retried, even when
// another lane was refused for good; only refusals all round drop it.
func TestLanesResult(t *testing.T) {
	down := errors.New("connection reset")
	refused := consumererror.NewPermanent(errors.New("refused"))
	for _, tc := range []struct {
		errs                   []error
		wantErr, wantPermanent bool
	}{
		{[]error{nil, nil}, false, false},
		{[]error{nil, down}, true, false},
		{[]error{refused, down, nil}, true, false},
		{[]error{refused, nil}, true, true},
	} {
		err := lanesResult(tc.errs)
		if (err != nil) != tc.wantErr || consumererror.IsPermanent(err) != tc.wantPermanent {
			t.Errorf("%v: got %v (permanent %v)", tc.errs, err, consumererror.IsPermanent(err))
		}
	}
}
