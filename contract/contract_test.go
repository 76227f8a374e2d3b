package contract

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

func TestChainHashIsSHA256OfPrevAndCanonical(t *testing.T) {
	canon := []byte(`{"event.name":"tripwire.file.access","tripwire.seq":1}`)
	sum := sha256.Sum256(append([]byte(GenesisHash), canon...))
	want := hex.EncodeToString(sum[:])
	if got := ChainHash(GenesisHash, canon); got != want {
		t.Fatalf("ChainHash = %s, want %s", got, want)
	}
	var h ChainHasher
	for range 2 { // the hasher is reused
		if got := string(h.Hex([]byte(GenesisHash), canon)); got != want {
			t.Fatalf("ChainHasher.Hex = %s, want %s", got, want)
		}
	}
	if len(GenesisHash) != 2*sha256.Size {
		t.Fatalf("GenesisHash has %d digits", len(GenesisHash))
	}
}

func TestDecodeNotificationsWantsANonEmptyArrayOfAlerts(t *testing.T) {
	ns, err := DecodeNotifications([]byte(`[{"alert_id":"a","seq":null},{"alert_id":"b","seq":3}]`))
	if err != nil || len(ns) != 2 || ns[0].Seq != nil || ns[1].Seq == nil || *ns[1].Seq != 3 {
		t.Fatalf("decoded %+v, %v", ns, err)
	}
	for _, bad := range []string{`{"alert_id":"a"}`, `[]`, `null`, `[{"alert_id":""}]`, `[{"severity":"WARN"}]`, `nope`} {
		if _, err := DecodeNotifications([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestDecodeTriageNotificationWantsTheAlertsKey(t *testing.T) {
	n, err := DecodeTriageNotification([]byte(`{"alert_id":"a","host_name":"web-01","event_time":"2026-01-02T03:04:05.000006Z"}`))
	if err != nil || n.AlertID != "a" || n.HostName != "web-01" || n.EventTime != "2026-01-02T03:04:05.000006Z" {
		t.Fatalf("decoded %+v, %v", n, err)
	}
	for _, bad := range []string{`[{"alert_id":"a","host_name":"h","event_time":"t"}]`, `{"alert_id":"a","host_name":"h"}`,
		`{"alert_id":"","host_name":"h","event_time":"t"}`, `null`, `nope`} {
		if _, err := DecodeTriageNotification([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestOnlyAccountedGapsAreNotTampering(t *testing.T) {
	for _, k := range BreakKinds() {
		if k.Tampering() == (k == BreakAccountedGap) {
			t.Errorf("%s: Tampering() = %v", k, k.Tampering())
		}
	}
}
