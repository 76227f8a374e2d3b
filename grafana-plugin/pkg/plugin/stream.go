package plugin

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend/log"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"slices"

	"github.com/cenkalti/backoff/v5"
	"github.com/tripwire-sec/tripwire/contract"
)

// StreamFilter is the subscription a channel path encodes (see channel.go).
// Putting the filters in the path makes each distinct filter its own Grafana
// Live channel, so Grafana runs one RunStream per filter and fans the frames
// out to every browser on it.
type StreamFilter struct {
	Hosts, Types, Severities, Rules []string
	// Triage: the channel carries triage changes too, as rows with
	// triage_changed set, for the Live page to update in place (the "live"
	// root). The "alerts" root carries new alerts only, so a streaming
	// dashboard panel, which appends every row, shows each alert once.
	Triage bool
}

// ParseStreamPath parses a readable channel path (the part after ds/<uid>/):
// only the canonical form channel.go writes is accepted, so one filter set
// is one channel.
func ParseStreamPath(path string) (StreamFilter, error) {
	var f StreamFilter
	parts := strings.Split(path, "/")
	switch parts[0] {
	case streamRoot:
	case liveRoot:
		f.Triage = true
	default:
		return f, badRequest("unknown stream %q", parts[0])
	}
	for _, p := range parts[1:] {
		key, enc, ok := strings.Cut(p, "=")
		val, valid := decodeValue(enc)
		if !ok || !valid || val == "" {
			return f, badRequest("stream path segment %q: want key=value", p)
		}
		switch key {
		case "host":
			f.Hosts = append(f.Hosts, val)
		case "type":
			f.Types = append(f.Types, val)
		case "severity":
			f.Severities = append(f.Severities, val)
		case "rule":
			f.Rules = append(f.Rules, val)
		default:
			return f, badRequest("stream path: unknown filter %q", key)
		}
	}
	if encodedPath(f.canonical()) != path {
		return f, badRequest("stream path %q: not in canonical form (keys host, type, severity, rule; values sorted, once)", path)
	}
	ff := Filter{Hosts: f.Hosts, Types: f.Types, Severities: f.Severities, Rules: f.Rules}
	return f, ff.Validate()
}

// Match reports whether a matches the filter.
func (f *StreamFilter) Match(a *Alert) bool {
	return in(f.Hosts, a.HostName) && in(f.Types, a.Type) && in(f.Severities, a.Severity) && in(f.Rules, a.Rule)
}

func in(set []string, v string) bool { return len(set) == 0 || slices.Contains(set, v) }

// liveRow is what a subscriber receives: a new alert, or (Triaged) an
// alert whose triage changed, with its stored triage.
type liveRow struct {
	Alert
	Triaged bool
}

// subscriber is one RunStream waiting for alerts.
type subscriber struct {
	filter  StreamFilter
	ch      chan *liveRow
	dropped atomic.Int64
}

// Feed holds the one LISTEN connection of a datasource instance and fans its
// notifications out to every RunStream of that instance. One connection per
// backend process, whatever the number of viewers, keeps PostgreSQL's
// connection count flat; every Grafana replica runs its own Feed, so live
// fan-out needs nothing between replicas.
type Feed struct {
	cfg   *pgxpool.Config
	store *Store

	mu   sync.Mutex
	subs map[*subscriber]struct{}
	// recent remembers the last alert ids delivered, so the replay after a
	// reconnect cannot deliver an alert twice.
	recent     map[string]struct{}
	recentRing []string
	recentNext int
	started    bool
	ready      chan struct{} // closed once LISTEN is in effect the first time
	cancel     context.CancelFunc
	done       chan struct{}

	// Malformed counts notifications that could not be decoded.
	Malformed atomic.Int64
	// Reconnects counts re-established LISTEN connections.
	Reconnects atomic.Int64
}

// subscriberBuffer is how many alerts a slow RunStream may fall behind before
// its oldest are dropped (and counted) rather than stalling the whole feed.
const subscriberBuffer = 1024

// recentIDs is how many delivered alert ids are remembered for de-duplication.
const recentIDs = 4096

// triageReplaySlack widens the replay of triage changes after a reconnect:
// updated_at is its transaction's start, so a change may commit (and
// notify) a while after its updated_at. Replaying a change twice is
// harmless: a viewer updates the row it shows.
const triageReplaySlack = time.Minute

// NewFeed prepares a feed; the connection opens with the first subscriber.
func NewFeed(cfg *pgxpool.Config, store *Store) *Feed {
	return &Feed{cfg: cfg, store: store, subs: map[*subscriber]struct{}{}, ready: make(chan struct{}),
		recent: make(map[string]struct{}, recentIDs), recentRing: make([]string, recentIDs)}
}

// Subscribe registers a subscriber and starts the listener if needed. The
// returned function unsubscribes.
func (fd *Feed) Subscribe(f StreamFilter) (*subscriber, func()) {
	s := &subscriber{filter: f, ch: make(chan *liveRow, subscriberBuffer)}
	fd.mu.Lock()
	fd.subs[s] = struct{}{}
	if !fd.started {
		fd.started = true
		ctx, cancel := context.WithCancel(context.Background())
		fd.cancel = cancel
		fd.done = make(chan struct{})
		go fd.run(ctx)
	}
	fd.mu.Unlock()
	return s, func() {
		fd.mu.Lock()
		delete(fd.subs, s)
		fd.mu.Unlock()
	}
}

// Ready is closed once the first LISTEN is in effect: a notification sent
// after that reaches every subscriber.
func (fd *Feed) Ready() <-chan struct{} { return fd.ready }

// Close stops the listener and ends every subscription.
func (fd *Feed) Close() {
	fd.mu.Lock()
	cancel, done := fd.cancel, fd.done
	fd.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	fd.mu.Lock()
	for s := range fd.subs {
		close(s.ch)
		delete(fd.subs, s)
	}
	fd.mu.Unlock()
}

func (fd *Feed) run(ctx context.Context) {
	defer close(fd.done)
	var readyOnce sync.Once
	bo := &backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond, RandomizationFactor: 0.25,
		Multiplier: 2, MaxInterval: 10 * time.Second}
	bo.Reset()
	var lastReceived, lastTriaged time.Time
	for first := true; ctx.Err() == nil; first = false {
		conn, err := pgx.ConnectConfig(ctx, fd.cfg.ConnConfig)
		var listening time.Time
		if err == nil {
			// The database's clock, as updated_at is: triage changes
			// committed after this are notified on this connection or
			// replayed after the next reconnect.
			err = conn.QueryRow(ctx, "SELECT statement_timestamp()").Scan(&listening)
		}
		if err == nil {
			_, err = conn.Exec(ctx, "LISTEN "+contract.NotifyChannel+"; LISTEN "+contract.TriageNotifyChannel)
		}
		if err != nil {
			if conn != nil {
				conn.Close(context.Background())
			}
			wait := bo.NextBackOff()
			log.DefaultLogger.Warn("live feed: connecting to PostgreSQL", "error", err, "retry_in", wait)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			continue
		}
		bo.Reset()
		readyOnce.Do(func() {
			// Until a notification tells the commit time of the newest alert,
			// replay after a reconnect starts from when listening began.
			lastReceived = time.Now()
			close(fd.ready)
		})
		if !first {
			fd.Reconnects.Add(1)
			// Notifications sent while no connection listened are gone;
			// replay what was committed meanwhile from the table.
			missed, err := fd.store.RecentAlerts(ctx, lastReceived, subscriberBuffer)
			if err != nil {
				log.DefaultLogger.Warn("live feed: replaying alerts missed while reconnecting", "error", err)
			}
			for i := range missed {
				if missed[i].ReceivedAt.After(lastReceived) {
					lastReceived = missed[i].ReceivedAt
				}
				fd.deliver(&liveRow{Alert: missed[i]})
			}
			triaged, err := fd.store.TriagedSince(ctx, lastTriaged.Add(-triageReplaySlack), subscriberBuffer)
			if err != nil {
				log.DefaultLogger.Warn("live feed: replaying triage changes missed while reconnecting", "error", err)
			}
			for i := range triaged {
				fd.deliver(&liveRow{Alert: triaged[i], Triaged: true})
			}
		}
		lastTriaged = listening
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				break
			}
			notes := []*pgconn.Notification{n}
			if n.Channel == contract.TriageNotifyChannel {
				notes = drainTriage(ctx, conn, notes)
			}
			if err := fd.handle(ctx, notes, &lastReceived, &lastTriaged); err != nil {
				log.DefaultLogger.Warn("live feed: re-reading notified alerts; reconnecting to replay them", "error", err)
				break
			}
		}
		conn.Close(context.Background())
	}
}

// triageDrain is how long the feed waits for the next notification after a
// triage change's: a bulk change sends one per alert, together at commit,
// and the feed re-reads them in one query rather than one each.
const triageDrain = 2 * time.Millisecond

// drainTriage adds to notes the triage notifications already arriving, up
// to a bulk change's worth, and at most one alert notification, last.
func drainTriage(ctx context.Context, conn *pgx.Conn, notes []*pgconn.Notification) []*pgconn.Notification {
	for len(notes) < maxBulk {
		wctx, cancel := context.WithTimeout(ctx, triageDrain)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil {
			// None pending; a failed connection fails the next wait too.
			return notes
		}
		notes = append(notes, n)
		if n.Channel != contract.TriageNotifyChannel {
			return notes
		}
	}
	return notes
}

// handle delivers what notes name, in their order (drainTriage puts the
// triage changes first). Any role that can connect may NOTIFY: the rows a
// notification names are re-read and delivered as they are stored, and
// nothing else; an error means they could not be read.
func (fd *Feed) handle(ctx context.Context, notes []*pgconn.Notification, lastReceived, lastTriaged *time.Time) error {
	var keys []Alert
	for _, n := range notes {
		if n.Channel != contract.TriageNotifyChannel {
			continue
		}
		k, ok := decodeTriageNotification(n.Payload)
		if !ok {
			fd.Malformed.Add(1)
			continue
		}
		keys = append(keys, k...)
	}
	if len(keys) > 0 {
		alerts, err := fd.store.Reread(ctx, keys)
		if err == nil {
			err = fd.store.attachTriage(ctx, alerts)
		}
		if err != nil {
			return err
		}
		for i := range alerts {
			if t := alerts[i].Triage.UpdatedAt; t != nil && t.After(*lastTriaged) {
				*lastTriaged = *t
			}
			fd.deliver(&liveRow{Alert: alerts[i], Triaged: true})
		}
	}
	for _, n := range notes {
		if n.Channel == contract.TriageNotifyChannel {
			continue
		}
		alerts, ok := decodeNotification(n.Payload)
		if !ok {
			fd.Malformed.Add(1)
			continue
		}
		alerts, err := fd.store.Reread(ctx, alerts)
		if err != nil {
			return err
		}
		for i := range alerts {
			if alerts[i].ReceivedAt.After(*lastReceived) {
				*lastReceived = alerts[i].ReceivedAt
			}
			fd.deliver(&liveRow{Alert: alerts[i]})
		}
	}
	return nil
}

// decodeNotification reads a notification's payload: an array of
// contract.Notification (the exporter packs the alerts of a batch into as
// few notifications as fit PostgreSQL's 8000-byte limit).
func decodeNotification(payload string) ([]Alert, bool) {
	ns, err := contract.DecodeNotifications([]byte(payload))
	if err != nil {
		return nil, false
	}
	alerts := make([]Alert, len(ns))
	for i, n := range ns {
		a := &alerts[i]
		a.AlertID, a.HostName, a.EventName, a.Type = n.AlertID, n.HostName, n.EventName, n.TripwireType
		a.Rule, a.Severity, a.Seq, a.Summary = n.RuleName, n.Severity, n.Seq, n.Summary
		if a.EventTime, err = time.Parse(time.RFC3339Nano, n.EventTime); err != nil {
			return nil, false
		}
		if a.ReceivedAt, err = time.Parse(time.RFC3339Nano, n.ReceivedAt); err != nil {
			return nil, false
		}
	}
	return alerts, true
}

// decodeTriageNotification reads a triage change's payload: the key of the
// alert it changed.
func decodeTriageNotification(payload string) ([]Alert, bool) {
	n, err := contract.DecodeTriageNotification([]byte(payload))
	if err != nil {
		return nil, false
	}
	at, err := time.Parse(time.RFC3339Nano, n.EventTime)
	if err != nil {
		return nil, false
	}
	return []Alert{{AlertID: n.AlertID, HostName: n.HostName, EventTime: at}}, true
}

// TriagedSince returns the alerts whose triage changed after since, oldest
// change first, at most limit, with their triage: the changes a live feed
// missed while it was not listening. Triage rows are few (people write
// them), so reading them by updated_at needs no index.
func (s *Store) TriagedSince(ctx context.Context, since time.Time, limit int) ([]Alert, error) {
	out, err := s.queryAlerts(ctx, false, `SELECT `+alertCols+` FROM alerts
JOIN (SELECT alert_id AS id, host_id AS h, event_time AS t, updated_at FROM alert_triage
      WHERE updated_at > $1 ORDER BY updated_at LIMIT $2) q
  ON alerts.alert_id = q.id AND alerts.host_id = q.h AND alerts.event_time = q.t
ORDER BY q.updated_at`, since, limit)
	if err == nil {
		err = s.attachTriage(ctx, out)
	}
	if err != nil {
		return nil, fmt.Errorf("reading triage changes: %w", err)
	}
	return out, nil
}

// deliver hands r to every subscriber whose filter matches it. A new alert
// goes out once (recent de-duplicates replays); a triage change goes out
// every time, to the subscribers that asked for triage changes.
func (fd *Feed) deliver(r *liveRow) {
	fd.mu.Lock()
	defer fd.mu.Unlock()
	if !r.Triaged {
		if _, dup := fd.recent[r.AlertID]; dup {
			return
		}
		delete(fd.recent, fd.recentRing[fd.recentNext])
		fd.recentRing[fd.recentNext] = r.AlertID
		fd.recentNext = (fd.recentNext + 1) % recentIDs
		fd.recent[r.AlertID] = struct{}{}
	}
	for s := range fd.subs {
		if !s.filter.Match(&r.Alert) || r.Triaged && !s.filter.Triage {
			continue
		}
		select {
		case s.ch <- r:
		default:
			// Full: drop the oldest so the feed shows the newest, and count it.
			select {
			case <-s.ch:
				s.dropped.Add(1)
			default:
			}
			select {
			case s.ch <- r:
			default:
				s.dropped.Add(1)
			}
		}
	}
}
