package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Settings is the datasource's configuration: the PostgreSQL connection that
// the tripwire collector writes to, and how host liveness is judged.
type Settings struct {
	// Host and Port of the PostgreSQL server.
	Host string  `json:"host"`
	Port flexInt `json:"port"`
	// Database and User to connect as; the user needs SELECT only.
	Database string `json:"database"`
	User     string `json:"user"`
	// SSLMode is a libpq sslmode: disable, require, verify-ca or verify-full.
	SSLMode string `json:"sslMode"`
	// MaxConns bounds the pool; the LISTEN connection is extra.
	MaxConns flexInt `json:"maxConns"`
	// HeartbeatSeconds is the agents' heartbeat interval. A host whose last
	// heartbeat is older than three intervals is shown OFFLINE.
	HeartbeatSeconds flexInt `json:"heartbeatSeconds"`

	// Password comes from secureJsonData, never from jsonData.
	Password string `json:"-"`
}

const (
	defaultHeartbeat = 30 * time.Second // the agent's default heartbeat_interval
	offlineIntervals = 3
	defaultMaxConns  = 8
)

// flexInt accepts 5432 and "5432": provisioning files expand ${VAR} into
// strings, the config page sends numbers.
type flexInt int

func (n *flexInt) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		if s == "" {
			*n = 0
			return nil
		}
		i, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		*n = flexInt(i)
		return nil
	}
	var i int
	if err := json.Unmarshal(b, &i); err != nil {
		return errors.New("not an integer")
	}
	*n = flexInt(i)
	return nil
}

var errNoHost = errors.New("settings: host is required")

// LoadSettings reads the datasource settings Grafana passes with every request.
func LoadSettings(s backend.DataSourceInstanceSettings) (Settings, error) {
	var st Settings
	if len(s.JSONData) > 0 {
		if err := json.Unmarshal(s.JSONData, &st); err != nil {
			return st, fmt.Errorf("settings: decoding jsonData: %w", err)
		}
	}
	st.Password = s.DecryptedSecureJSONData["password"]
	return st, st.Validate()
}

// Validate checks the settings and fills defaults.
func (s *Settings) Validate() error {
	var errs []error
	if s.Host == "" {
		errs = append(errs, errNoHost)
	}
	if s.Port == 0 {
		s.Port = 5432
	}
	if s.Port < 1 || s.Port > 65535 {
		errs = append(errs, fmt.Errorf("settings: port %d out of range", s.Port))
	}
	if s.Database == "" {
		s.Database = "tripwire"
	}
	if s.User == "" {
		errs = append(errs, errors.New("settings: user is required"))
	}
	switch s.SSLMode {
	case "":
		s.SSLMode = "verify-full"
	case "disable", "require", "verify-ca", "verify-full":
	default:
		errs = append(errs, fmt.Errorf("settings: unknown sslMode %q", s.SSLMode))
	}
	if s.MaxConns == 0 {
		s.MaxConns = defaultMaxConns
	}
	if s.MaxConns < 1 || s.MaxConns > 100 {
		errs = append(errs, fmt.Errorf("settings: maxConns %d out of range 1..100", s.MaxConns))
	}
	if s.HeartbeatSeconds < 0 || s.HeartbeatSeconds > 3600 {
		errs = append(errs, fmt.Errorf("settings: heartbeatSeconds %d out of range 0..3600", s.HeartbeatSeconds))
	}
	return errors.Join(errs...)
}

// OfflineAfter is how long a host may stay silent before it counts as OFFLINE.
func (s *Settings) OfflineAfter() time.Duration {
	hb := defaultHeartbeat
	if s.HeartbeatSeconds > 0 {
		hb = time.Duration(s.HeartbeatSeconds) * time.Second
	}
	return offlineIntervals * hb
}

// ReaderRole is the PostgreSQL role every plugin session runs as.
const ReaderRole = "tripwire_reader"

// PoolConfig builds the pgx pool configuration. The URL form lets net/url do
// the escaping of user names and passwords.
func (s *Settings) PoolConfig() (*pgxpool.Config, error) {
	u := url.URL{
		Scheme: "postgres",
		User:   url.UserPassword(s.User, s.Password),
		Host:   net.JoinHostPort(s.Host, strconv.Itoa(int(s.Port))),
		Path:   "/" + s.Database,
	}
	q := url.Values{}
	q.Set("sslmode", s.SSLMode)
	q.Set("application_name", "tripwire-grafana")
	q.Set("connect_timeout", "5")
	u.RawQuery = q.Encode()
	cfg, err := pgxpool.ParseConfig(u.String())
	if err != nil {
		// The error text may echo the URL; never let the password reach a log.
		return nil, errors.New("settings: invalid connection parameters")
	}
	cfg.MaxConns = int32(s.MaxConns)
	// Every statement the plugin runs is a read; a runaway one is cut off
	// server-side rather than holding a pool connection.
	cfg.ConnConfig.RuntimeParams["statement_timeout"] = "30000"
	cfg.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	// Whatever the login role may do, the plugin reads as tripwire_reader
	// (migrations/0008_reader_role.sql): SELECT on what it shows, nothing
	// else. The login role must be a member of it.
	cfg.ConnConfig.RuntimeParams["role"] = ReaderRole
	// pgx caches prepared statements, and PostgreSQL switches a statement
	// to a generic plan after five runs. The explorer's filters differ
	// wildly in selectivity (one host vs. all of one severity), so a plan
	// made without the values is often the wrong index; plan per run.
	cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_custom_plan"
	return cfg, nil
}
