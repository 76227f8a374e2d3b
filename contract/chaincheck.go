package contract

import (
	"bytes"
	"context"
	"runtime"
)

// ChainEntry is one stored entry of an audit chain. The slices alias the
// bytes where the entry is stored (a log line, a row buffer), so checking an
// entry decodes and copies nothing.
type ChainEntry struct {
	Seq      uint64
	PrevHash []byte
	Hash     []byte
	Payload  []byte
	// Malformed marks an entry its reader could not parse; it is not hashed.
	Malformed bool
	// HashOK reports Hash == ChainHash(PrevHash, Payload); CheckChain sets it.
	HashOK bool
}

// ChainBatch is a run of consecutive entries, CheckChain's unit of work.
// Embed it in a type that carries the reader's own state for the batch.
type ChainBatch struct {
	// Parse, if set, runs on a worker before hashing and fills Entries (from
	// a block of log lines, say), so that parsing runs on every core too.
	Parse   func()
	Entries []ChainEntry
	done    chan struct{}
}

// Batch returns b, so that any type embedding a ChainBatch passes through
// CheckChain.
func (b *ChainBatch) Batch() *ChainBatch { return b }

// check parses (if asked) and hashes the batch's entries.
func (b *ChainBatch) check(h *ChainHasher) {
	if b.Parse != nil {
		b.Parse()
	}
	for i := range b.Entries {
		e := &b.Entries[i]
		e.HashOK = !e.Malformed && bytes.Equal(h.Hex(e.PrevHash, e.Payload), e.Hash)
	}
}

// CheckChain verifies audit chains at the speed of SHA-256 on every core.
// Each entry's hash can be checked on its own, and hashing is nearly all the
// work, so the batches sent on in are parsed and hashed on workers goroutines
// (every core when workers <= 0); the links between entries (seq + 1,
// prev_hash = the hash before it) need order, so each batch comes out on the
// returned channel in the order it went in, once checked, for the caller to
// follow. The returned channel closes once in is closed and drained, or when
// ctx is done; a producer stops sending when ctx is done.
//
// The agent's log verifier (internal/auditchain) and the plugin's re-check
// of the stored central entries both verify through this.
func CheckChain[B interface{ Batch() *ChainBatch }](ctx context.Context, in <-chan B, workers int) <-chan B {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	jobs := make(chan *ChainBatch, 2*workers)
	inOrder := make(chan B, 2*workers)
	out := make(chan B)
	for range workers {
		go func() {
			var h ChainHasher
			for b := range jobs {
				b.check(&h)
				close(b.done)
			}
		}()
	}
	go func() {
		defer close(inOrder)
		defer close(jobs)
		for {
			var b B
			var ok bool
			select {
			case b, ok = <-in:
			case <-ctx.Done():
				return
			}
			if !ok {
				return
			}
			b.Batch().done = make(chan struct{})
			select {
			case jobs <- b.Batch():
			case <-ctx.Done():
				return
			}
			select {
			case inOrder <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		defer close(out)
		for b := range inOrder {
			select {
			case <-b.Batch().done:
			case <-ctx.Done():
				return
			}
			select {
			case out <- b:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
