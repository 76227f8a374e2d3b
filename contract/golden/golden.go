// Package golden holds the files that pin a format both Go modules must
// agree on. Each is written by a test of the root module that produces the
// format (run it with -update to rewrite the file) and read back by tests of
// the consumers, so a change on one side fails the other's tests instead of
// drifting. Start with [Chain] and [Notify].
package golden

import (
	_ "embed"
	"encoding/json"
)

// Entry is one audit-chain entry as the agent writes it.
type Entry struct {
	Canonical string `json:"canonical"` // the event's canonical bytes, the payload the hash covers
	PrevHash  string `json:"prev_hash"`
	Hash      string `json:"hash"`
}

//go:embed chain.json
var chain []byte

// Chain is a short audit chain from seq 1, written by internal/auditchain's
// TestGoldenChain with the agent's own writer.
func Chain() []Entry {
	var es []Entry
	if err := json.Unmarshal(chain, &es); err != nil {
		panic("golden/chain.json: " + err.Error())
	}
	return es
}

//go:embed notify.json
var notify []byte

// Notify is a NOTIFY payload as the tripwire exporter sends it, written by
// its TestGoldenNotification.
func Notify() []byte { return notify }
