package tripwireexporter

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/tripwire-sec/tripwire/internal/event"
)

const upsertHostsSQL = `
INSERT INTO hosts AS h (host_name, host_ext_id, ip_address, platform, arch, agent_version, cert_not_after, cert_serial, last_alert_at, last_seen)
SELECT n, NULLIF(x, ''), NULLIF(ip, '')::inet, NULLIF(p, ''), NULLIF(a, ''), NULLIF(v, ''),
       NULLIF(c, '')::timestamptz, NULLIF(cs, ''), NULLIF(la, '')::timestamptz, now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[])
     AS u(n, x, ip, p, a, v, c, cs, la)
ORDER BY n
ON CONFLICT (host_name) DO UPDATE SET
    host_ext_id    = COALESCE(EXCLUDED.host_ext_id, h.host_ext_id),
    ip_address     = COALESCE(EXCLUDED.ip_address, h.ip_address),
    platform       = COALESCE(EXCLUDED.platform, h.platform),
    arch           = COALESCE(EXCLUDED.arch, h.arch),
    agent_version  = COALESCE(EXCLUDED.agent_version, h.agent_version),
    cert_not_after = COALESCE(EXCLUDED.cert_not_after, h.cert_not_after),
    cert_serial    = COALESCE(EXCLUDED.cert_serial, h.cert_serial),
    last_alert_at  = GREATEST(h.last_alert_at, EXCLUDED.last_alert_at),
    last_seen      = GREATEST(h.last_seen, EXCLUDED.last_seen),
    status         = CASE WHEN h.status = '` + event.StatusOffline + `' THEN '` + event.StatusOnline + `'
                          WHEN ` + reactivated + ` THEN '` + event.StatusOnline + `'
                          ELSE h.status END,
    retired_at     = CASE WHEN ` + reactivated + ` THEN NULL ELSE h.retired_at END
RETURNING host_id, host_name`

// reactivated: a retired host's record arrives under another certificate
// than the one it had when it was retired, told by the serial the receiver
// sets from the peer certificate: the name was given to a new host. A host
// retired without a known serial (before serials were stored) compares the
// not-after instead.
const reactivated = `(h.status = '` + event.StatusRetired + `' AND CASE
                           WHEN h.retired_cert_serial IS NOT NULL
                             THEN EXCLUDED.cert_serial IS NOT NULL AND EXCLUDED.cert_serial <> h.retired_cert_serial
                           ELSE EXCLUDED.cert_not_after IS NOT NULL
                             AND EXCLUDED.cert_not_after IS DISTINCT FROM h.retired_cert_not_after END)`

// heartbeatSQL sets what the agent reports now: a heartbeat without
// watchers means none runs, not "unchanged".
const heartbeatSQL = `
UPDATE hosts AS h SET
    status         = CASE WHEN h.status = '` + event.StatusRetired + `' THEN h.status ELSE u.s END,
    watchers       = NULLIF(u.w, ''),
    unserved_rules = NULLIF(u.un, ''),
    status_reasons = NULLIF(u.r, '')
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(id, s, w, un, r)
WHERE h.host_id = u.id`

// insertAlertsSQL inserts idempotently and NOTIFYs the payload of each row
// that is new, as a one-element array (every payload is an array); the
// notifications are delivered when the transaction commits.
// The payloads are built here rather than in SQL: json_build_object and
// to_char for every row doubled the cost of the insert.
const insertAlertsSQL = `
WITH ins AS (
    INSERT INTO alerts (alert_id, event_time, host_id, host_name, event_name, tripwire_type,
                        rule_name, severity, seq, summary, event_detail, received_at, search_words)
    SELECT id, t, h, hn, en, tt, r, sev, NULLIF(sq, 0), sm, NULLIF(d, '')::jsonb, $12, string_to_array(w, ' ')
    FROM unnest($1::uuid[], $2::timestamptz[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                $7::text[], $8::text[], $9::bigint[], $10::text[], $11::text[], $14::text[])
         AS u(id, t, h, hn, en, tt, r, sev, sq, sm, d, w)
    ON CONFLICT DO NOTHING
    RETURNING alert_id, event_time, host_id
)
SELECT count(*) FROM (
    SELECT pg_notify('` + event.NotifyChannel + `', '[' || u.p || ']')
    FROM ins JOIN unnest($1::uuid[], $2::timestamptz[], $3::uuid[], $13::text[]) AS u(id, t, h, p)
         ON u.id = ins.alert_id AND u.t = ins.event_time AND u.h = ins.host_id
) AS notified`

const insertAuditSQL = `
INSERT INTO audit_entries (host_id, seq, alert_id, event_time, prev_hash, hash, payload)
SELECT h, s, id, t, p, hs, d
FROM unnest($1::uuid[], $2::bigint[], $3::uuid[], $4::timestamptz[], $5::text[], $6::text[], $7::text[])
     AS u(h, s, id, t, p, hs, d)
ON CONFLICT DO NOTHING`

const insertForksSQL = `
INSERT INTO chain_forks (host_id, seq, hash, prev_hash, alert_id, payload)
SELECT h, s, hs, p, id, d::jsonb
FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::uuid[], $6::text[]) AS u(h, s, hs, p, id, d)
ON CONFLICT DO NOTHING`

const insertBreaksSQL = `
INSERT INTO chain_breaks (host_id, kind, expected_seq, got_seq, expected_hash, got_hash, alert_id)
SELECT h, k, es, gs, NULLIF(eh, ''), NULLIF(gh, ''), a
FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::bigint[], $5::text[], $6::text[], $7::uuid[])
     AS u(h, k, es, gs, eh, gh, a)`

const updateHeadsSQL = `
UPDATE chain_heads AS c SET seq = u.s, hash = u.hs, verified_at = now()
FROM unnest($1::uuid[], $2::bigint[], $3::text[]) AS u(id, s, hs)
WHERE c.host_id = u.id`

// writes collects one transaction's rows, sent together at its end.
type writes struct {
	// copy says the rows may go in with COPY: known holds the alerts of the
	// events the chain check found replayed, and every audit entry is new.
	// Otherwise INSERT ... ON CONFLICT DO NOTHING. A row COPY did not
	// expect (a replayed fork entry) fails the transaction, which is then
	// done again with INSERT.
	copy   bool
	known  map[alertKey]bool
	alerts alertRows
	audit  entryRows
	forks  entryRows
	breaks breakRows
	losses lossRows
	claims struct {
		ids    []pgtype.UUID
		seqs   []int64
		hashes []string
		ats    []time.Time
		broken []bool
	}
	heads struct {
		ids    []pgtype.UUID
		seqs   []int64
		hashes []string
	}
}

// alertKey is an alerts row's primary key.
type alertKey struct {
	id     [16]byte
	host   [16]byte
	micros int64
}

// dbUUID is u as pgx encodes it cheaply (a string into a uuid column costs
// a failed binary encoding and a parse per value).
func dbUUID(u uuid.UUID) pgtype.UUID { return pgtype.UUID{Bytes: u, Valid: true} }

type alertRows struct {
	ids, hosts                                      []pgtype.UUID
	hostNames, names, types, rules, sevs, summaries []string
	times                                           []time.Time
	seqs                                            []int64
	// words are each alert's search words (migration 0012).
	words []searchWords
	// canons are the events' canonical bytes; details what goes into
	// event_detail, "" for NULL (setDetails).
	canons  [][]byte
	details []string
}

func (a *alertRows) add(hostID pgtype.UUID, hostName string, ev *event.Event, summary string, canon []byte) {
	a.ids = append(a.ids, dbUUID(ev.AlertID))
	// Stored with microseconds, as PostgreSQL keeps them; the payload then
	// carries the row's exact value.
	a.times = append(a.times, ev.Time.Truncate(time.Microsecond))
	a.hosts = append(a.hosts, hostID)
	a.hostNames = append(a.hostNames, text(hostName))
	a.names = append(a.names, string(ev.Name))
	a.types = append(a.types, string(ev.Type()))
	a.rules = append(a.rules, text(ev.Rule))
	a.sevs = append(a.sevs, ev.Severity.String())
	seq := int64(0)
	if ev.Chained() {
		seq = int64(ev.Seq)
	}
	a.seqs = append(a.seqs, seq)
	a.summaries = append(a.summaries, text(summary))
	a.canons = append(a.canons, canon)
	var cmd, user string
	if ev.Process != nil {
		cmd, user = ev.Process.CommandLine, ev.Process.UserName
	}
	a.words = append(a.words, searchWords(event.SearchWords(summary, ev.Rule, hostName, cmd, user)))
}

// entryKey names the audit entry holding an alert's payload (migration 0018).
type entryKey struct {
	alert, host [16]byte
	seq         int64
}

// setDetails fills the event_detail of each alert whose payload is not
// written to audit_entries in this transaction: the payload is stored once,
// and the audit entry, which keeps the exact bytes the chain hashes, holds
// it for the others (migration 0018).
func (a *alertRows) setDetails(audit *entryRows) {
	inAudit := make(map[entryKey]bool, len(audit.hosts))
	for i := range audit.hosts {
		inAudit[entryKey{audit.alertIDs[i].Bytes, audit.hosts[i].Bytes, audit.seqs[i]}] = true
	}
	a.details = make([]string, len(a.ids))
	for i := range a.ids {
		if a.seqs[i] != 0 && inAudit[entryKey{a.ids[i].Bytes, a.hosts[i].Bytes, a.seqs[i]}] {
			continue
		}
		a.details[i] = jsonbSafe(a.canons[i])
	}
}

// joinedWords are a's search words as one space-separated string per row,
// for an INSERT's unnest (which cannot take an array of arrays).
func (a *alertRows) joinedWords() []string {
	out := make([]string, len(a.words))
	for i, w := range a.words {
		out[i] = strings.Join(w, " ")
	}
	return out
}

// entryRows are audit entries; payloads hold the exact canonical bytes the
// hash covers.
type entryRows struct {
	hosts, alertIDs         []pgtype.UUID
	prevs, hashes, payloads []string
	seqs                    []int64
	times                   []time.Time
}

func (r *entryRows) add(hostID pgtype.UUID, en *chainEntry) {
	r.hosts = append(r.hosts, hostID)
	r.seqs = append(r.seqs, en.seq)
	r.alertIDs = append(r.alertIDs, dbUUID(en.ev.AlertID))
	r.times = append(r.times, en.ev.Time)
	r.prevs = append(r.prevs, en.prev)
	r.hashes = append(r.hashes, en.hash)
	r.payloads = append(r.payloads, string(en.canon))
}

type lossRows struct {
	hosts, alertIDs       []pgtype.UUID
	firsts, lasts, counts []int64
}

type breakRows struct {
	hosts, alertIDs             []pgtype.UUID // alertIDs: invalid (NULL) when the break raises no alert
	kinds, expHashes, gotHashes []string
	expSeqs, gotSeqs            []int64
}

// storeBatch stores hosts' records in one transaction, with COPY unless
// insertOnly.
func (e *tripwireExporter) storeBatch(ctx context.Context, hosts []*hostBatch, insertOnly bool) error {
	return pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		if err := upsertHosts(ctx, tx, hosts); err != nil {
			return err
		}
		w := &writes{}
		chains := map[pgtype.UUID]*hostChain{}
		for _, h := range hosts {
			for _, r := range h.events {
				w.alerts.add(h.id, h.name, r.ev, r.ev.Summary(), r.canon)
				if r.ev.Chained() {
					c := chains[h.id]
					if c == nil {
						c = &hostChain{id: h.id, name: h.name}
						chains[h.id] = c
					}
					c.records = append(c.records, r)
				}
			}
		}
		for _, h := range hosts {
			if hb := h.heartbeat; hb != nil && hb.Seq > 0 && hb.Hash != "" {
				c := chains[h.id]
				if c == nil {
					c = &hostChain{id: h.id, name: h.name}
					chains[h.id] = c
				}
				c.claim = &headClaim{seq: int64(hb.Seq), hash: hb.Hash, at: hb.Time}
			}
		}
		if err := e.checkChains(ctx, tx, chains, w); err != nil {
			return err
		}
		if insertOnly {
			w.copy = false
		}
		b := &pgx.Batch{}
		queueHeartbeats(b, hosts)
		if err := e.flush(ctx, tx, b, w); err != nil {
			return err
		}
		return nil
	})
}

func upsertHosts(ctx context.Context, tx pgx.Tx, hosts []*hostBatch) error {
	var cols [9][]string
	for _, h := range hosts {
		cert := h.certNotAfter
		var lastAlert time.Time
		for _, r := range h.events {
			if cert.IsZero() && r.ev.Name == event.AgentCertExpiry && r.ev.Agent != nil {
				cert = r.ev.Agent.CertNotAfter
			}
			if t := r.ev.Type(); t != event.TypeAgent && r.ev.Time.After(lastAlert) {
				lastAlert = r.ev.Time
			}
		}
		if cert.IsZero() && h.heartbeat != nil && h.heartbeat.Agent != nil {
			cert = h.heartbeat.Agent.CertNotAfter
		}
		vals := []string{text(h.name), text(h.extID), h.addr, text(h.osType), text(h.arch), text(h.version), rfc3339(cert),
			text(h.certSerial), rfc3339(lastAlert)}
		for i, v := range vals {
			cols[i] = append(cols[i], v)
		}
	}
	rows, err := tx.Query(ctx, upsertHostsSQL, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8])
	if err != nil {
		return fmt.Errorf("upserting hosts: %w", err)
	}
	ids := map[string]pgtype.UUID{}
	var id pgtype.UUID
	var name string
	_, err = pgx.ForEachRow(rows, []any{&id, &name}, func() error {
		ids[name] = id
		return nil
	})
	if err != nil {
		return fmt.Errorf("upserting hosts: %w", err)
	}
	for _, h := range hosts {
		if h.id = ids[text(h.name)]; !h.id.Valid {
			return fmt.Errorf("upserting hosts: no id returned for %q", h.name)
		}
	}
	return nil
}

func queueHeartbeats(b *pgx.Batch, hosts []*hostBatch) {
	var ids []pgtype.UUID
	var status, watchers, unserved, reasons []string
	for _, h := range hosts {
		hb := h.heartbeat
		if hb == nil {
			continue
		}
		a := hb.Agent
		if a == nil {
			a = &event.Agent{}
		}
		s := event.StatusOnline
		if a.Status == event.StatusDegraded {
			s = event.StatusDegraded
		}
		ids = append(ids, h.id)
		status = append(status, s)
		watchers = append(watchers, text(a.Watchers))
		unserved = append(unserved, text(a.Unserved))
		reasons = append(reasons, text(a.Reasons))
	}
	if len(ids) > 0 {
		b.Queue(heartbeatSQL, ids, status, watchers, unserved, reasons)
	}
}

// flush sends the collected rows, after whatever b already holds, in one
// round trip.
func (e *tripwireExporter) flush(ctx context.Context, tx pgx.Tx, b *pgx.Batch, w *writes) error {
	var inserted int64
	a := &w.alerts
	if len(a.ids) > 0 {
		received := time.Now().UTC().Truncate(time.Microsecond)
		a.setDetails(&w.audit)
		payloads, err := a.payloads(received)
		if err != nil {
			return err
		}
		if w.copy {
			n, err := copyAlerts(ctx, tx, b, a, w.known, received, payloads)
			if err != nil {
				return err
			}
			inserted = n
		} else {
			b.Queue(insertAlertsSQL, a.ids, a.times, a.hosts, a.hostNames, a.names, a.types, a.rules, a.sevs, a.seqs,
				a.summaries, a.details, received, payloads, a.joinedWords()).
				QueryRow(func(row pgx.Row) error { return row.Scan(&inserted) })
		}
	}
	if au := &w.audit; len(au.hosts) > 0 {
		if w.copy {
			rows := make([][]any, len(au.hosts))
			for i := range au.hosts {
				rows[i] = []any{au.hosts[i], au.seqs[i], au.alertIDs[i], au.times[i], au.prevs[i], au.hashes[i], au.payloads[i]}
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"audit_entries"},
				[]string{"host_id", "seq", "alert_id", "event_time", "prev_hash", "hash", "payload"}, pgx.CopyFromRows(rows)); err != nil {
				return fmt.Errorf("storing audit entries: %w", err)
			}
		} else {
			b.Queue(insertAuditSQL, au.hosts, au.seqs, au.alertIDs, au.times, au.prevs, au.hashes, au.payloads)
		}
	}
	if f := &w.forks; len(f.hosts) > 0 {
		payloads := make([]string, len(f.payloads))
		for i, p := range f.payloads {
			payloads[i] = jsonbSafe([]byte(p))
		}
		b.Queue(insertForksSQL, f.hosts, f.seqs, f.hashes, f.prevs, f.alertIDs, payloads)
	}
	if l := &w.losses; len(l.hosts) > 0 {
		b.Queue(`INSERT INTO chain_losses (host_id, first_seq, last_seq, loss_count, alert_id)
			SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::uuid[]) ON CONFLICT DO NOTHING`,
			l.hosts, l.firsts, l.lasts, l.counts, l.alertIDs)
	}
	if br := &w.breaks; len(br.hosts) > 0 {
		b.Queue(insertBreaksSQL, br.hosts, br.kinds, br.expSeqs, br.gotSeqs, br.expHashes, br.gotHashes, br.alertIDs)
	}
	if h := &w.heads; len(h.ids) > 0 {
		b.Queue(updateHeadsSQL, h.ids, h.seqs, h.hashes)
	}
	if c := &w.claims; len(c.ids) > 0 {
		b.Queue(`UPDATE chain_heads AS c SET claimed_seq = u.s, claimed_hash = u.hs, claimed_at = u.t, claim_broken = u.b
			FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::timestamptz[], $5::bool[]) AS u(id, s, hs, t, b)
			WHERE c.host_id = u.id`, c.ids, c.seqs, c.hashes, c.ats, c.broken)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("storing alerts: %w", err)
	}
	e.telemetry.ExporterTripwireAlertsStored.Add(ctx, inserted)
	return nil
}

// copyAlerts COPYs the alert rows not already stored and queues their
// notifications; it returns how many it copied.
func copyAlerts(ctx context.Context, tx pgx.Tx, b *pgx.Batch, a *alertRows, known map[alertKey]bool, received time.Time, payloads []string) (int64, error) {
	rows := make([][]any, 0, len(a.ids))
	notify := make([]string, 0, len(a.ids))
	seen := make(map[alertKey]bool, len(a.ids))
	for i := range a.ids {
		k := alertKey{a.ids[i].Bytes, a.hosts[i].Bytes, a.times[i].UnixMicro()}
		if known[k] || seen[k] {
			continue
		}
		seen[k] = true
		var seq, detail any
		if a.seqs[i] != 0 {
			seq = a.seqs[i]
		}
		if a.details[i] != "" {
			detail = a.details[i]
		}
		rows = append(rows, []any{a.ids[i], a.times[i], received, a.hosts[i], a.hostNames[i], a.names[i], a.types[i],
			a.rules[i], a.sevs[i], seq, a.summaries[i], detail, a.words[i]})
		notify = append(notify, payloads[i])
	}
	if len(rows) == 0 {
		return 0, nil
	}
	n, err := tx.CopyFrom(ctx, pgx.Identifier{"alerts"}, []string{"alert_id", "event_time", "received_at", "host_id",
		"host_name", "event_name", "tripwire_type", "rule_name", "severity", "seq", "summary", "event_detail", "search_words"},
		pgx.CopyFromRows(rows))
	if err != nil {
		return 0, fmt.Errorf("storing alerts: %w", err)
	}
	b.Queue(`SELECT count(*) FROM (SELECT pg_notify('`+event.NotifyChannel+`', p) FROM unnest($1::text[]) AS p) AS notified`,
		notifyBatches(notify))
	return n, nil
}

// sweep marks silent hosts OFFLINE and raises chain gaps that have waited
// out chain_gap_grace on hosts that sent nothing since.
func (e *tripwireExporter) sweep(ctx context.Context) error {
	if !e.ready.Load() {
		return nil
	}
	if e.cfg.HostOfflineAfter > 0 {
		_, err := e.pool.Exec(ctx, `UPDATE hosts SET status = '`+event.StatusOffline+`'
			WHERE status NOT IN ('`+event.StatusOffline+`', '`+event.StatusRetired+`') AND last_seen < now() - make_interval(secs => $1)`,
			e.cfg.HostOfflineAfter.Seconds())
		if err != nil {
			return fmt.Errorf("marking hosts offline: %w", err)
		}
	}
	rows, err := e.pool.Query(ctx, `SELECT c.host_id FROM chain_heads c
		WHERE EXISTS (SELECT 1 FROM audit_entries a
		              WHERE a.host_id = c.host_id AND a.seq > c.seq
		                AND a.received_at <= now() - make_interval(secs => $1))
		ORDER BY c.host_id LIMIT 100`, e.cfg.ChainGapGrace.Seconds())
	if err != nil {
		return fmt.Errorf("finding overdue chain gaps: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[pgtype.UUID])
	if err != nil || len(ids) == 0 {
		return err
	}
	return pgx.BeginFunc(ctx, e.pool, func(tx pgx.Tx) error {
		chains := make(map[pgtype.UUID]*hostChain, len(ids))
		for _, id := range ids {
			chains[id] = &hostChain{id: id}
		}
		w := &writes{}
		if err := e.checkChains(ctx, tx, chains, w); err != nil {
			return err
		}
		return e.flush(ctx, tx, &pgx.Batch{}, w)
	})
}

// text makes a Go string storable as PostgreSQL text, which cannot hold NUL.
func text(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}

// jsonbSafe makes canonical JSON storable as jsonb, which refuses the escape
// \u0000: it becomes \ufffd. It serves the events stored as jsonb (outside
// a chain, or forks); a chained event's audit entry keeps the exact bytes
// (text). An event with a NUL byte is rare (a field the kernel hands over
// unchecked).
func jsonbSafe(canon []byte) string {
	const nul = `\u0000`
	if !strings.Contains(string(canon), nul) {
		return string(canon)
	}
	var sb strings.Builder
	for i := 0; i < len(canon); i++ {
		c := canon[i]
		if c != '\\' || i+1 >= len(canon) {
			sb.WriteByte(c)
			continue
		}
		// Outside strings canonical JSON has no backslash, and inside one
		// each backslash starts an escape: step over it whole.
		if canon[i+1] == 'u' && i+6 <= len(canon) && string(canon[i:i+6]) == nul {
			sb.WriteString(`\ufffd`)
			i += 5
			continue
		}
		sb.WriteByte(c)
		sb.WriteByte(canon[i+1])
		i++
	}
	return sb.String()
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
