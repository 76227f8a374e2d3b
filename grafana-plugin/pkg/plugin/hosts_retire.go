package plugin

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"
	"github.com/jackc/pgx/v5"
	"github.com/tripwire-sec/tripwire/contract"
)

// ErrForbidden: the caller's Grafana role may not do this.
var ErrForbidden = errors.New("forbidden")

// editor is the Grafana user making a change that asks for the Editor role
// or above (rule sets, triage), with a login to attribute it to; doing names
// the change in the refusal.
func editor(r *http.Request, doing string) (*backend.User, error) {
	u := backend.PluginConfigFromContext(r.Context()).User
	if u == nil || (u.Role != "Editor" && u.Role != "Admin") {
		return nil, fmt.Errorf("%w: %s needs the Editor role or above", ErrForbidden, doing)
	}
	if u.Login == "" {
		return nil, fmt.Errorf("%w: no Grafana user in the request to attribute the change to", ErrForbidden)
	}
	return u, nil
}

// handleRetire retires a decommissioned host: it raises no offline alert
// any more, its data stays, and a record under a new certificate for the
// name re-activates it. The one write of the API, so it asks for Grafana's
// Admin role on top of datasources:query.
func (d *Datasource) handleRetire(r *http.Request) (any, error) {
	u := backend.PluginConfigFromContext(r.Context()).User
	if u == nil || u.Role != "Admin" {
		return nil, fmt.Errorf("%w: retiring a host needs the Admin role", ErrForbidden)
	}
	name := r.PathValue("name")
	ok, err := d.store.RetireHost(r.Context(), name)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrNotFound
	}
	log.DefaultLogger.Info("host retired", contract.ResourceHostName, name, "user.name", u.Login)
	return map[string]string{"host_name": name, "status": contract.StatusRetired}, nil
}

// RetireHost marks the host RETIRED through tripwire_retire_host, the one
// function the plugin's read-only role may call; false if no such host.
// Sessions are read-only by default; this one transaction asks to write.
func (s *Store) RetireHost(ctx context.Context, name string) (bool, error) {
	var ok bool
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadWrite}, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT tripwire_retire_host($1)`, name).Scan(&ok)
	})
	if err != nil {
		return false, fmt.Errorf("retiring host: %w", err)
	}
	return ok, nil
}
