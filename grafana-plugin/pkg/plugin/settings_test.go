package plugin

import (
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

func TestLoadSettings(t *testing.T) {
	s, err := LoadSettings(backend.DataSourceInstanceSettings{
		JSONData:                []byte(`{"host":"db","port":"6543","user":"grafana","heartbeatSeconds":"20"}`),
		DecryptedSecureJSONData: map[string]string{"password": "p@ss:/word"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.Port != 6543 || s.Database != "tripwire" || s.SSLMode != "verify-full" || s.MaxConns != defaultMaxConns {
		t.Fatalf("defaults: %+v", s)
	}
	if s.OfflineAfter() != 60*time.Second {
		t.Fatalf("offline after %v", s.OfflineAfter())
	}
	cfg, err := s.PoolConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ConnConfig.Password != "p@ss:/word" || cfg.ConnConfig.Port != 6543 || cfg.ConnConfig.Host != "db" {
		t.Fatalf("pool config: %+v", cfg.ConnConfig)
	}
	if cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] != "on" {
		t.Fatal("connections are not read-only")
	}
	def, _ := LoadSettings(backend.DataSourceInstanceSettings{JSONData: []byte(`{"host":"db","user":"u"}`)})
	if def.OfflineAfter() != 90*time.Second {
		t.Fatalf("default offline after %v, want 3 × 30 s", def.OfflineAfter())
	}

	for js, want := range map[string]string{
		`{"user":"u"}`:                                  "host is required",
		`{"host":"h"}`:                                  "user is required",
		`{"host":"h","user":"u","port":70000}`:          "port",
		`{"host":"h","user":"u","port":"x"}`:            "not an integer",
		`{"host":"h","user":"u","sslMode":"prefer"}`:    "sslMode",
		`{"host":"h","user":"u","maxConns":1000}`:       "maxConns",
		`{"host":"h","user":"u","heartbeatSeconds":-1}`: "heartbeatSeconds",
		`not json`: "jsonData",
	} {
		_, err := LoadSettings(backend.DataSourceInstanceSettings{JSONData: []byte(js)})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want it to mention %q", js, err, want)
		}
	}
}
