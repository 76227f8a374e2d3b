package tripwireopamp

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/tripwire-sec/tripwire/contract"
	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/internal/rulestore"
	"github.com/tripwire-sec/tripwire/migrations"
)

// store is the extension's PostgreSQL: rule sets in, agent reports out.
type store struct {
	pool *pgxpool.Pool
}

// offerFor composes the rule set of host from the sets that apply to it:
// its attributes are what its agent's events last said (bound to its
// certificate by the receiver), its name the certificate's CN.
func (s *server) offerFor(ctx context.Context, host string) (offer, error) {
	attrs := map[string]string{}
	var raw []byte
	err := s.pool.QueryRow(ctx, `SELECT tripwire_host_attributes(h) FROM hosts h WHERE h.host_name = $1`, host).Scan(&raw)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return offer{}, fmt.Errorf("reading host attributes: %w", err)
	}
	if raw != nil {
		if err := json.Unmarshal(raw, &attrs); err != nil {
			return offer{}, fmt.Errorf("reading host attributes: %w", err)
		}
	}
	attrs[event.ResourceHostName] = host
	sets, err := rulestore.New(s.pool).ForHost(ctx, attrs)
	if err != nil {
		return offer{}, err
	}
	o, err := compose(sets)
	if err != nil {
		if rerr := s.store.offerFailed(ctx, host, err); rerr != nil {
			s.logger.Warn("recording an offer error", zap.String(event.ResourceHostName, host), zap.Error(rerr))
		}
		return offer{}, err
	}
	return o, nil
}

func hexOrNil(b []byte) *string {
	if b == nil {
		return nil
	}
	h := hex.EncodeToString(b)
	return &h
}

func orNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// record writes what one message reported; what it did not report stays.
// applied_at moves only when the agent reports a set applied that it had
// not reported applied before.
func (st *store) record(ctx context.Context, host string, uid []byte, r report) error {
	var healthy *bool
	var hstatus, herr *string
	if r.health != nil {
		healthy, hstatus, herr = &r.health.Healthy, &r.health.Status, &r.health.LastError
	}
	var hash *string
	if r.status != "" {
		hash = hexOrNil(r.hash)
		if hash == nil {
			empty := ""
			hash = &empty
		}
	}
	_, err := st.pool.Exec(ctx, `
		INSERT INTO agent_management AS m (host_name, instance_uid, connected, last_message_at,
			rule_status, rule_hash, applied_at, last_apply_error, last_apply_error_at,
			effective_config_hash, healthy, health_status, health_error)
		VALUES ($1, $2, true, now(), $3, $4, CASE WHEN $3 = $9 THEN now() END,
			$5, CASE WHEN $5::text IS NOT NULL THEN now() END, $6, $7, $8, $10)
		ON CONFLICT (host_name) DO UPDATE SET
			instance_uid = EXCLUDED.instance_uid,
			connected = true,
			last_message_at = now(),
			applied_at = CASE WHEN $3 = $9 AND (m.rule_status IS DISTINCT FROM $9 OR m.rule_hash IS DISTINCT FROM $4)
				THEN now() ELSE m.applied_at END,
			rule_status = COALESCE($3, m.rule_status),
			rule_hash = COALESCE($4, m.rule_hash),
			last_apply_error = COALESCE($5, m.last_apply_error),
			last_apply_error_at = CASE WHEN $5::text IS NOT NULL AND ($5 IS DISTINCT FROM m.last_apply_error OR m.rule_hash IS DISTINCT FROM $4)
				THEN now() ELSE m.last_apply_error_at END,
			effective_config_hash = COALESCE($6, m.effective_config_hash),
			healthy = COALESCE($7, m.healthy),
			health_status = COALESCE($8, m.health_status),
			health_error = COALESCE($10, m.health_error)`,
		host, hex.EncodeToString(uid), orNil(r.status), hash, orNil(r.applyError), orNil(r.effectiveHash),
		healthy, hstatus, contract.RuleStatusApplied, herr)
	if err != nil {
		return fmt.Errorf("recording agent report: %w", err)
	}
	return nil
}

func (st *store) offered(ctx context.Context, host string, o offer) error {
	_, err := st.pool.Exec(ctx, `
		INSERT INTO agent_management (host_name, offered_hash, offered_sets, offered_at, offer_error)
		VALUES ($1, $2, $3, now(), NULL)
		ON CONFLICT (host_name) DO UPDATE SET offered_hash = $2, offered_sets = $3, offered_at = now(), offer_error = NULL`,
		host, hex.EncodeToString(o.hash), o.sets)
	return err
}

func (st *store) offerFailed(ctx context.Context, host string, cause error) error {
	_, err := st.pool.Exec(ctx, `
		INSERT INTO agent_management (host_name, offer_error) VALUES ($1, $2)
		ON CONFLICT (host_name) DO UPDATE SET offer_error = $2`, host, cause.Error())
	return err
}

func (st *store) disconnected(ctx context.Context, host string) error {
	_, err := st.pool.Exec(ctx, `UPDATE agent_management SET connected = false WHERE host_name = $1`, host)
	return err
}

// listen applies the migrations (the extension may start before the
// exporter), then LISTENs for rule set changes, signalling changed after
// each and after each (re)connection, when notifications may have been lost.
func (st *store) listen(ctx context.Context, logger *zap.Logger, changed chan<- struct{}) {
	signal := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	wait := time.Second
	for ctx.Err() == nil {
		err := st.listenOnce(ctx, signal)
		if ctx.Err() != nil {
			return
		}
		logger.Warn("following rule set changes; retrying", zap.Error(err), zap.Duration("retry_in", wait))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

func (st *store) listenOnce(ctx context.Context, signal func()) error {
	if err := migrations.Apply(ctx, st.pool); err != nil {
		return err
	}
	conn, err := st.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A LISTENing connection must not go back to the pool.
	pc := conn.Hijack()
	defer pc.Close(context.Background())
	if _, err := pc.Exec(ctx, "LISTEN "+pgx.Identifier{contract.RuleSetsChannel}.Sanitize()); err != nil {
		return err
	}
	signal()
	for {
		if _, err := pc.WaitForNotification(ctx); err != nil {
			return err
		}
		signal()
	}
}
