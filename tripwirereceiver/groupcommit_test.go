package tripwirereceiver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/consumer/consumererror"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// gatedConsumer records every ConsumeLogs call; the first
// maxGroupsInFlight calls (as many groups as go side by side) each report on
// entered and block until the gate opens. A call returns err, or a permanent error when it carries
// the path poison; the paths of the calls it accepts are counted.
type gatedConsumer struct {
	mu       sync.Mutex
	calls    []int          // records per call
	accepted map[string]int // file.path → times accepted
	hosts    map[string]string
	entered  chan struct{}
	gate     chan struct{}
	err      error
	poison   string
}

func newGatedConsumer(err error, poison string) *gatedConsumer {
	return &gatedConsumer{accepted: map[string]int{}, hosts: map[string]string{},
		entered: make(chan struct{}, maxGroupsInFlight), gate: make(chan struct{}), err: err, poison: poison}
}

func (g *gatedConsumer) consumer(t testing.TB) consumer.Logs {
	c, err := consumer.NewLogs(func(_ context.Context, ld plog.Logs) error {
		g.mu.Lock()
		g.calls = append(g.calls, ld.LogRecordCount())
		blocked := len(g.calls) <= maxGroupsInFlight
		paths := map[string]string{}
		for i := 0; i < ld.ResourceLogs().Len(); i++ {
			rl := ld.ResourceLogs().At(i)
			host, _ := rl.Resource().Attributes().Get(event.ResourceHostName)
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				lrs := rl.ScopeLogs().At(j).LogRecords()
				for k := 0; k < lrs.Len(); k++ {
					p, _ := lrs.At(k).Attributes().Get("file.path")
					paths[p.Str()] = host.Str()
				}
			}
		}
		err := g.err
		if _, bad := paths[g.poison]; bad && g.poison != "" {
			err = consumererror.NewPermanent(errors.New("poison"))
		}
		if err == nil {
			for p, h := range paths {
				g.accepted[p]++
				g.hosts[p] = h
			}
		}
		g.mu.Unlock()
		if blocked {
			g.entered <- struct{}{}
			<-g.gate
		}
		return err
	})
	require.NoError(t, err)
	return c
}

// Requests arriving while every group in flight is being consumed go on
// together as the next group: one ConsumeLogs for all of them, every record once, each still
// under the host its certificate names, and every request answered with the
// group's result. A permanent refusal is found out request by request, so it
// refuses only the request it concerns.
func TestConcurrentRequestsAreConsumedAsOneGroup(t *testing.T) {
	const waiting = 20
	firsts := slices.Repeat([]int{1}, maxGroupsInFlight) // the groups in flight
	for _, tc := range []struct {
		name   string
		err    error
		poison string
		want   codes.Code
		calls  []int
	}{
		{"accepted", nil, "", codes.OK, append(firsts, waiting)},
		{"refused", errors.New("queue full"), "", codes.Unavailable, append(firsts, waiting)},
		{"one refused for good", nil, "/p3", codes.OK,
			append(append(firsts, waiting), slices.Repeat([]int{1}, waiting)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGatedConsumer(tc.err, tc.poison)
			f := startWith(t, newPKI(t), g.consumer(t))
			var open sync.Once
			t.Cleanup(func() { open.Do(func() { close(g.gate) }) }) // shutdown waits for the consumer
			// One connection per request, as agents make: a connection
			// carries at most max_concurrent_streams requests at once.
			hosts := []string{"web-01", "web-02", "db-01"}
			certs := map[string]tls.Certificate{}
			for _, h := range hosts {
				certs[h] = f.agent(t, h)
			}
			conns := make([]plogotlp.GRPCClient, waiting+maxGroupsInFlight)
			for i := range conns {
				h := hosts[i%3]
				if i >= waiting {
					h = "web-01"
				}
				conns[i] = f.client(t, nil, certs[h])
			}
			reqs := make([]plog.Logs, waiting)
			for i := range reqs {
				reqs[i] = logs(map[string][]*event.Event{"": {trip(fmt.Sprintf("/p%d", i))}})
			}
			type result struct {
				path string
				code codes.Code
			}
			results := make(chan result, len(conns))
			send := func(c plogotlp.GRPCClient, path string, ld plog.Logs) {
				_, err := export(t, c, ld)
				results <- result{path, status.Code(err)}
			}
			for i := range maxGroupsInFlight {
				p := fmt.Sprintf("/first%d", i)
				go send(conns[waiting+i], p, logs(map[string][]*event.Event{"": {trip(p)}}))
				<-g.entered // this request's group is being consumed
			}
			for i := range waiting {
				go send(conns[i], fmt.Sprintf("/p%d", i), reqs[i])
			}
			require.Eventually(t, func() bool {
				f.rcv.group.mu.Lock()
				defer f.rcv.group.mu.Unlock()
				return len(f.rcv.group.pending) == waiting
			}, 20*time.Second, 5*time.Millisecond)
			open.Do(func() { close(g.gate) })
			for range conns {
				r := <-results
				want := tc.want
				if r.path == tc.poison {
					want = codes.InvalidArgument
				}
				require.Equal(t, want, r.code, r.path)
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			require.Equal(t, tc.calls, g.calls)
			if tc.err != nil {
				return
			}
			for i := range waiting {
				p := fmt.Sprintf("/p%d", i)
				if p == tc.poison {
					require.Zero(t, g.accepted[p], p)
					continue
				}
				require.Equal(t, 1, g.accepted[p], p)
				require.Equal(t, hosts[i%3], g.hosts[p], p)
			}
		})
	}
}

// After Shutdown, a request is refused as retryable instead of waiting for a
// group that will never come.
func TestGroupCommitRefusesAfterClose(t *testing.T) {
	sink := new(consumertest.LogsSink)
	g := newGroupCommit(sink)
	require.NoError(t, g.consume(t.Context(), logs(map[string][]*event.Event{"web-01": {trip("/a")}})))
	g.close()
	g.close() // twice is fine
	require.ErrorIs(t, g.consume(t.Context(), logs(map[string][]*event.Event{"web-01": {trip("/b")}})), errShuttingDown)
	require.Equal(t, 1, sink.LogRecordCount())
}

// A request to an idle receiver goes at once; requests arriving within the
// interval (minGroupInterval; long here, so that a loaded machine's
// scheduling cannot pass for it) of the last group's start wait for the rest of it and go
// on together, so a steady trickle costs the queue one write per interval,
// not one per request.
func TestGroupCommitPacesGroups(t *testing.T) {
	g := newGatedConsumer(nil, "")
	close(g.gate) // the first call closes entered and passes
	const interval = 500 * time.Millisecond
	gc := newGroupCommit(g.consumer(t))
	gc.interval = interval
	one := func(p string) plog.Logs { return logs(map[string][]*event.Event{"web-01": {trip(p)}}) }

	start := time.Now()
	require.NoError(t, gc.consume(t.Context(), one("/idle")))
	require.Less(t, time.Since(start), interval, "an idle receiver's request waited")

	// Right after a group started: these wait for the interval and go as one.
	const n = 5
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { require.NoError(t, gc.consume(t.Context(), one(fmt.Sprintf("/p%d", i)))) })
	}
	wg.Wait()
	require.GreaterOrEqual(t, time.Since(start), interval)
	g.mu.Lock()
	calls := slices.Clone(g.calls)
	g.mu.Unlock()
	require.Equal(t, 1, calls[0])
	require.Equal(t, n+1, len(g.accepted))
	// However the goroutines were scheduled, all that arrived within the
	// interval went together: far fewer groups than requests.
	require.LessOrEqual(t, len(calls), 3, "groups %v", calls)

	// After an idle interval, a request goes at once again.
	time.Sleep(interval)
	t0 := time.Now()
	require.NoError(t, gc.consume(t.Context(), one("/later")))
	require.Less(t, time.Since(t0), interval, "a request after an idle interval waited")
	gc.close()
}

// While the database holds every group in flight, what waits for the next
// one is bounded: a request its agent gave up on leaves the line (its
// records are not stored, and the agent still has them), and past
// maxPendingBytes a request is refused at once instead of waiting.
func TestGroupCommitBoundsWhatWaits(t *testing.T) {
	g := newGatedConsumer(nil, "")
	gc := newGroupCommit(g.consumer(t))
	var open sync.Once
	t.Cleanup(func() { open.Do(func() { close(g.gate) }); gc.close() })
	one := func(p string, commandLine int) plog.Logs {
		e := trip(p)
		e.Process.CommandLine = strings.Repeat("x", commandLine)
		return logs(map[string][]*event.Event{"web-01": {e}})
	}
	var wg sync.WaitGroup
	for i := range maxGroupsInFlight {
		wg.Go(func() { require.NoError(t, gc.consume(t.Context(), one(fmt.Sprintf("/first%d", i), 0))) })
		<-g.entered
	}

	ctx, cancel := context.WithCancel(t.Context())
	gaveUp := make(chan error)
	go func() { gaveUp <- gc.consume(ctx, one("/gave-up", 0)) }()
	require.Eventually(t, func() bool { gc.mu.Lock(); defer gc.mu.Unlock(); return len(gc.pending) == 1 }, 10*time.Second, time.Millisecond)
	cancel()
	require.ErrorIs(t, <-gaveUp, context.Canceled)
	gc.mu.Lock()
	require.Empty(t, gc.pending)
	require.Zero(t, gc.records)
	require.Zero(t, gc.bytes)
	gc.mu.Unlock()

	// One request larger than the bound alone still waits (it is admitted
	// into an empty line); the next one is refused.
	wg.Go(func() { require.NoError(t, gc.consume(t.Context(), one("/large", maxPendingBytes*3/4))) })
	require.Eventually(t, func() bool { gc.mu.Lock(); defer gc.mu.Unlock(); return len(gc.pending) == 1 }, 10*time.Second, time.Millisecond)
	require.ErrorIs(t, gc.consume(t.Context(), one("/refused", maxPendingBytes/2)), errBusy)

	open.Do(func() { close(g.gate) })
	wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	require.Equal(t, 1, g.accepted["/large"])
	require.Zero(t, g.accepted["/gave-up"])
	require.Zero(t, g.accepted["/refused"])
}
