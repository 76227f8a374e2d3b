package auditchain

import (
	"bytes"
	"testing"

	"github.com/tripwire-sec/tripwire/contract"
)

// FuzzParseLine: the parser never panics, and whatever it accepts re-encodes
// to the same line.
func FuzzParseLine(f *testing.F) {
	f.Add([]byte(`{"seq":1,"time":"2026-11-26T12:00:00Z","prev_hash":"` + contract.GenesisHash + `","hash":"` + contract.GenesisHash + `","payload":{"a":1}}`))
	f.Add([]byte(`{"seq":18446744073709551615,"time":"x","prev_hash":"","hash":"","payload":{}}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		var raw rawEntry
		if parseLine(line, &raw) != nil {
			return
		}
		e, err := raw.entry()
		if err != nil {
			return
		}
		again := appendLine(nil, &e)
		var raw2 rawEntry
		if err := parseLine(bytes.TrimSuffix(again, []byte("\n")), &raw2); err != nil {
			t.Fatalf("re-encoded line does not parse: %v", err)
		}
		e2, err := raw2.entry()
		if err != nil {
			t.Fatalf("re-encoded time does not parse: %v", err)
		}
		if e2.Seq != e.Seq || e2.Hash != e.Hash || e2.PrevHash != e.PrevHash || !bytes.Equal(e2.Payload, e.Payload) || !e2.Time.Equal(e.Time) {
			t.Fatalf("round trip changed the entry")
		}
	})
}

// FuzzVerify: arbitrary logs never panic the verifier; a clean prefix of a
// valid log stays clean.
func FuzzVerify(f *testing.F) {
	f.Add([]byte("garbage\n"), uint8(0))
	f.Add([]byte(""), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, cut uint8) {
		_, _ = Verify(bytes.NewReader(data), nil)
		_, _ = Verify(bytes.NewReader(data), &Anchor{Seq: uint64(cut) + 1, Hash: contract.GenesisHash})
	})
}
