package tripwireexporter

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"

	"go.opentelemetry.io/collector/consumer/consumererror"
)

// lanes splits a batch's hosts into as many transactions as the pool has
// connections, each host always in the same lane. The chain check holds
// each host's chain head (and hosts row) locked until commit, so one
// transaction per batch with every host in it made concurrent batches wait
// for each other whole; split by host, the lanes of concurrent batches that
// share no host commit side by side.
func (e *tripwireExporter) lanes(hosts []*hostBatch) [][]*hostBatch {
	n := min(int(e.pool.Config().MaxConns), len(hosts))
	if n <= 1 {
		return [][]*hostBatch{hosts}
	}
	byLane := make([][]*hostBatch, n)
	for _, h := range hosts {
		f := fnv.New32a()
		f.Write([]byte(h.name))
		i := f.Sum32() % uint32(n)
		byLane[i] = append(byLane[i], h) // in name order, as decode sorted them
	}
	out := byLane[:0]
	for _, l := range byLane {
		if len(l) > 0 {
			out = append(out, l)
		}
	}
	return out
}

// storeLanes stores each lane in its own transaction, side by side.
func (e *tripwireExporter) storeLanes(ctx context.Context, lanes [][]*hostBatch) error {
	if len(lanes) == 1 {
		return e.storeLane(ctx, lanes[0])
	}
	errs := make([]error, len(lanes))
	var wg sync.WaitGroup
	for i, l := range lanes {
		wg.Go(func() { errs[i] = e.storeLane(ctx, l) })
	}
	wg.Wait()
	return lanesResult(errs)
}

// lanesResult is a batch's result from its lanes' results. A lane that may
// succeed on retry makes the whole batch retried (the lanes stored
// meanwhile are replays then, and change nothing); only when every failure
// is permanent is the batch dropped. Joining a permanent error in would
// make the whole join permanent.
func lanesResult(errs []error) error {
	var retry, permanent []error
	for _, err := range errs {
		switch {
		case err == nil:
		case consumererror.IsPermanent(err):
			permanent = append(permanent, err)
		default:
			retry = append(retry, err)
		}
	}
	if len(retry) > 0 {
		return errors.Join(retry...)
	}
	return errors.Join(permanent...)
}
