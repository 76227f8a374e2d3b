package watcher

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// runEBPF runs a loaded and attached eBPF watcher until ctx ends: read
// drains the ring buffer, stats reads the kernel counters every
// execStatsInterval, and refresh (if not nil) runs every execRefreshInterval.
// When ctx ends it detaches so nothing new arrives, lets the reader drain
// what the buffer holds, reads the counters a last time and releases the
// objects.
func runEBPF(ctx context.Context, rd *ringbuf.Reader, read, stats, refresh, detach, release func()) {
	readDone, statsDone, stop := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readDone)
		read()
	}()
	go func() {
		defer close(statsDone)
		t := NewAlignedTimer(execStatsInterval)
		defer t.Stop()
		var refreshC <-chan time.Time
		if refresh != nil {
			r := time.NewTicker(execRefreshInterval)
			defer r.Stop()
			refreshC = r.C
		}
		for {
			select {
			case <-stop:
				stats()
				return
			case <-t.C:
				t.Again()
				stats()
			case <-refreshC:
				refresh()
			}
		}
	}()
	go func() {
		<-ctx.Done()
		detach()
		rd.Flush()
		<-readDone
		rd.Close()
		close(stop)
		<-statsDone
		release()
	}()
}

// readRingbuf decodes each record of rd as a T and hands it to handle, until
// the reader is closed or flushed empty. A record too short for a T, or that
// does not decode, counts as malformed.
func readRingbuf[T any](rd *ringbuf.Reader, log *slog.Logger, what string, malformed *atomic.Uint64, handle func(*T)) {
	var rec ringbuf.Record
	var ev T
	size := binary.Size(ev)
	for {
		if err := rd.ReadInto(&rec); err != nil {
			if errors.Is(err, ringbuf.ErrClosed) || errors.Is(err, ringbuf.ErrFlushed) {
				return
			}
			log.Warn("reading "+what+" ring buffer", "error", err)
			continue
		}
		if len(rec.RawSample) < size {
			malformed.Add(1)
			continue
		}
		if _, err := binary.Decode(rec.RawSample[:size], binary.NativeEndian, &ev); err != nil {
			malformed.Add(1)
			continue
		}
		handle(&ev)
	}
}

// reportRingbufLoss reports the ring-buffer reserve failures the kernel
// counted since the last report.
func reportRingbufLoss(sink Sink, log *slog.Logger, msg string, lost uint64, reported *uint64) {
	if lost > *reported {
		sink.Lost(event.LossRingbuf, int64(lost-*reported))
		log.Warn(msg, "count", lost-*reported)
		*reported = lost
	}
}
