package tripwireexporter

import (
	"context"
	"errors"
	"hash/fnv"
	"sync"

	"go.opentelemetry.io/collector/consumer/consumererror"
)

// lanes splits a batch's hosts into at most as many transactions as the
// pool has connections, each host always in the same lane. The chain check
// holds each host's chain head (and hosts row) locked until commit, so one
// transaction per batch with every host in it made concurrent batches wait
// for each other whole; split by host, the lanes of concurrent batches that
// share no host commit side by side. The result has one entry per lane,
// nil for a lane with none of the batch's hosts.
func (e *tripwireExporter) lanes(hosts []*hostBatch) [][]*hostBatch {
	byLane := make([][]*hostBatch, len(e.laneMu))
	for _, h := range hosts {
		f := fnv.New32a()
		f.Write([]byte(h.name))
		i := f.Sum32() % uint32(len(byLane))
		byLane[i] = append(byLane[i], h) // in name order, as decode sorted them
	}
	return byLane
}

// storeLanes stores each lane in its own transaction, side by side. Within
// this process a lane is stored by one batch at a time: a second batch's
// transaction for the same hosts would hold a pool connection only to wait
// for the first one's locks, and a few such waits took every connection
// while the other lanes had none.
func (e *tripwireExporter) storeLanes(ctx context.Context, lanes [][]*hostBatch) error {
	errs := make([]error, len(lanes))
	var wg sync.WaitGroup
	for i, l := range lanes {
		if len(l) == 0 {
			continue
		}
		wg.Go(func() {
			e.laneMu[i].Lock()
			defer e.laneMu[i].Unlock()
			errs[i] = e.storeLane(ctx, l)
		})
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
