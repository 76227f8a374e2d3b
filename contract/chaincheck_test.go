package contract

import (
	"context"
	"fmt"
	"testing"
)

// TestCheckChainInOrder sends many small batches through several workers and
// checks that they come back in order with each entry's hash judged right.
func TestCheckChainInOrder(t *testing.T) {
	const batches, perBatch = 200, 7
	in := make(chan *ChainBatch)
	go func() {
		defer close(in)
		prev := []byte(GenesisHash)
		for b := range batches {
			batch := &ChainBatch{}
			for i := range perBatch {
				seq := uint64(b*perBatch + i + 1)
				payload := fmt.Appendf(nil, `{"tripwire.seq":%d}`, seq)
				hash := []byte(ChainHash(string(prev), payload))
				e := ChainEntry{Seq: seq, PrevHash: prev, Hash: hash, Payload: payload}
				switch seq % 50 {
				case 10:
					e.Payload = []byte(`{"tripwire.seq":0}`) // edited content
				case 20:
					e = ChainEntry{Seq: seq, Malformed: true}
				}
				batch.Entries = append(batch.Entries, e)
				prev = hash
			}
			in <- batch
		}
	}()
	next := uint64(1)
	for b := range CheckChain(context.Background(), in, 4) {
		for _, e := range b.Entries {
			if e.Seq != next {
				t.Fatalf("entry %d came out where %d belongs", e.Seq, next)
			}
			if want := next%50 != 10 && next%50 != 20; e.HashOK != want {
				t.Errorf("seq %d: HashOK %v, want %v", e.Seq, e.HashOK, want)
			}
			next++
		}
	}
	if next != batches*perBatch+1 {
		t.Fatalf("%d entries came out, want %d", next-1, batches*perBatch)
	}
}

// TestCheckChainStops: a reader that stops early cancels, and the workers
// and the producer do not block forever.
func TestCheckChainStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	in := make(chan *ChainBatch)
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for {
			select {
			case in <- &ChainBatch{Entries: make([]ChainEntry, 1)}:
			case <-ctx.Done():
				return
			}
		}
	}()
	out := CheckChain(ctx, in, 2)
	<-out
	cancel()
	<-produced
	for range out { // closes once the pipeline has stopped
	}
}
