// Package spool is the agent's local store of chained events that the
// collector has not yet acknowledged: a SQLite database (modernc.org/sqlite,
// WAL) written by one goroutine in batched transactions and bounded by count
// and bytes.
//
// Start with [Open]. The pipeline hands chained events to [Spool.PutDurable]
// while the audit chain syncs them (start-up reconciliation uses
// [Spool.Put]); the shipper reads them with [Spool.Oldest], deletes them
// with [Spool.Delete] once acknowledged, and wakes on [Spool.Committed]. When the spool is full it
// sheds INFO events first, then WARN, oldest first, never CRITICAL, and tells
// the pipeline through [Options.OnShed] so the loss is itself reported.
package spool

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/tripwire-sec/tripwire/internal/event"
	"github.com/tripwire-sec/tripwire/internal/safefile"
)

// Item is one spooled event. ID is the event's seq.
type Item struct {
	ID    int64
	Event *event.Event
}

// Shed describes events dropped to keep the spool within its limits.
type Shed struct {
	Count    int64
	FirstSeq uint64 // lowest and highest seq shed; the range may include kept CRITICAL events
	LastSeq  uint64
	Info     int64 // how many of Count were INFO and WARN
	Warn     int64
}

// Options configure a spool.
type Options struct {
	Path      string
	MaxEvents int64 // 0: unbounded
	MaxBytes  int64 // stored event bytes (canonical JSON and hashes); 0: unbounded
	// OnShed is called by the writer goroutine after a commit that shed
	// events. It must not block: the pipeline queues a loss event.
	OnShed func(Shed)
	// OnCommit, if set, is called by the writer goroutine after each
	// transaction of new events with when it began and committed
	// (benchmarks: pipeline.Trace.Spooled). It must not block or keep the
	// events.
	OnCommit func(batch []*event.Event, began, committed time.Time)
	// Queue is the number of batches Put may queue before it blocks; 0 means 64.
	Queue  int
	Logger *slog.Logger
}

// Stats are the spool's counters, for /healthz and /metrics.
type Stats struct {
	Depth            int64
	Bytes            int64
	Commits          int64
	Deletes          int64
	ShedInfo         int64
	ShedWarn         int64
	OverLimit        bool // only CRITICAL and loss events remain and the limit is exceeded
	SpooledThrough   uint64
	DeliveredThrough uint64
}

// Spool is safe for concurrent use.
type Spool struct {
	db     *sql.DB // the one writing connection
	rdb    *sql.DB // readers and the checkpointer
	opts   Options
	log    *slog.Logger
	queue  chan request
	done   chan struct{}
	commit chan struct{}

	closeOnce    sync.Once
	closed       chan struct{}
	checkpointed chan struct{} // the checkpointer has stopped
	dirty        chan struct{} // written since the last checkpoint

	mu    sync.Mutex
	stats Stats
}

type request struct {
	events []*event.Event
	ack    chan error // non-nil: Flush waiting for this point to be committed
	// durable, if non-nil, says when the events are durable in the audit
	// chain (nil error) or never will be; they are inserted meanwhile but
	// committed only after it (PutDurable).
	durable <-chan error
}

const lossName = string(event.AgentLoss)

const schema = `
CREATE TABLE IF NOT EXISTS events (
	seq       INTEGER PRIMARY KEY,
	alert_id  TEXT    NOT NULL,
	severity  INTEGER NOT NULL,
	name      TEXT    NOT NULL,
	observed  INTEGER NOT NULL,
	prev_hash TEXT    NOT NULL,
	hash      TEXT    NOT NULL,
	size      INTEGER NOT NULL,
	canonical BLOB    NOT NULL
);
CREATE INDEX IF NOT EXISTS events_shed ON events (severity, seq) WHERE name <> 'tripwire.agent.loss';
CREATE INDEX IF NOT EXISTS events_loss ON events (seq) WHERE name = 'tripwire.agent.loss';
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('spooled_through', 0), ('delivered_through', 0);
`

// Open opens or creates the spool at opts.Path (mode 0600, missing
// directories 0700; see safefile.OpenPrivate for what the path must be) and
// starts its writer.
//
// synchronous=NORMAL: in WAL mode a commit survives a process crash (SIGKILL)
// without an fsync per transaction; only a power loss can roll back the last
// commits, and those events are already fsynced in the audit chain, from which
// start-up reconciliation puts them back. FULL would add an fsync per batch
// for nothing the chain does not already give.
func Open(opts Options) (*Spool, error) {
	if opts.Path == "" {
		return nil, errors.New("opening spool: no path")
	}
	// Create the file ourselves so it is 0600 from the start; SQLite gives
	// the -wal and -shm files the database file's mode. SQLite then opens
	// these by name, so every directory on the path must be one nobody but
	// root and the agent can rearrange (safefile.OpenPrivate).
	f, err := safefile.OpenPrivate(opts.Path, os.O_RDWR)
	if err != nil {
		return nil, fmt.Errorf("opening spool: %w", err)
	}
	f.Close()
	// Checkpoints run in the background (checkpoint), not inside a commit:
	// an automatic checkpoint fsyncs the database in the middle of the
	// writer's transaction and shows up as a latency spike.
	dsn := "file:" + opts.Path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=busy_timeout(10000)&_pragma=wal_autocheckpoint(0)&_pragma=cache_size(-512)"
	db, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("opening spool: %w", err)
	}
	// One writing connection: the writer and Delete are serialised, so
	// SQLite never returns BUSY between them.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("creating spool schema: %w", err)
	}
	// Readers (the shipper's Oldest) and the checkpointer use their own
	// connections: in WAL mode they never wait for the writer.
	rdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("opening spool: %w", err)
	}
	rdb.SetMaxOpenConns(2)
	if opts.Queue <= 0 {
		opts.Queue = 64
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Spool{
		db: db, rdb: rdb, opts: opts, log: opts.Logger,
		queue:  make(chan request, opts.Queue),
		done:   make(chan struct{}),
		commit: make(chan struct{}, 1),
		closed: make(chan struct{}),

		checkpointed: make(chan struct{}),
		dirty:        make(chan struct{}, 1),
	}
	if err := s.loadStats(); err != nil {
		db.Close()
		rdb.Close()
		return nil, err
	}
	go s.writer()
	go s.checkpoint()
	return s, nil
}

func (s *Spool) loadStats() error {
	row := s.db.QueryRow(`SELECT count(*), coalesce(sum(size), 0),
		(SELECT value FROM meta WHERE key = 'spooled_through'),
		(SELECT value FROM meta WHERE key = 'delivered_through') FROM events`)
	var through, delivered int64
	if err := row.Scan(&s.stats.Depth, &s.stats.Bytes, &through, &delivered); err != nil {
		return fmt.Errorf("reading spool state: %w", err)
	}
	s.stats.SpooledThrough, s.stats.DeliveredThrough = uint64(through), uint64(delivered)
	return nil
}

// ErrClosed is returned by Put and Flush after Close.
var ErrClosed = errors.New("spool closed")

// Put queues chained events (each with Seq and Hash set) for the writer. It
// blocks while the queue is full, which is the back-pressure the pipeline
// passes on to the watchers.
func (s *Spool) Put(ctx context.Context, events []*event.Event) error {
	for _, e := range events {
		if e.Seq == 0 || e.Hash == "" {
			return fmt.Errorf("spooling %s: event is not chained", e.Name)
		}
	}
	return s.send(ctx, request{events: events})
}

// PutDurable is Put for events whose audit-chain sync is still running: the
// writer inserts them at once, overlapping that sync, but commits them, and
// so lets a reader see them, only once durable delivers nil. A shipper must
// never send an entry a power loss could still take out of the chain (its
// seq and hash would be reused, a false fork at the collector). If durable
// delivers an error they are not committed; the chain stopped, and start-up
// reconciles the spool from what the chain kept.
func (s *Spool) PutDurable(ctx context.Context, events []*event.Event, durable <-chan error) error {
	for _, e := range events {
		if e.Seq == 0 || e.Hash == "" {
			return fmt.Errorf("spooling %s: event is not chained", e.Name)
		}
	}
	return s.send(ctx, request{events: events, durable: durable})
}

func (s *Spool) send(ctx context.Context, r request) error {
	select {
	case <-s.closed:
		return ErrClosed
	default:
	}
	select {
	case s.queue <- r:
		return nil
	case <-s.closed:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Flush waits until everything Put before it is committed.
func (s *Spool) Flush(ctx context.Context) error {
	ack := make(chan error, 1)
	if err := s.send(ctx, request{ack: ack}); err != nil {
		return err
	}
	select {
	case err := <-ack:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close commits everything queued and closes the database.
func (s *Spool) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	<-s.done
	<-s.checkpointed
	// Leave a small file behind: fold the WAL in and truncate it.
	_, ckErr := s.db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	return errors.Join(ckErr, s.rdb.Close(), s.db.Close())
}

// checkpoint folds the WAL into the database a moment after writes, while
// the spool is open. PASSIVE never blocks the writer or readers; what it
// cannot copy now it copies next time. It sleeps while nothing is written, so
// an idle agent does not wake for it.
func (s *Spool) checkpoint() {
	defer close(s.checkpointed)
	for {
		select {
		case <-s.closed:
			return
		case <-s.dirty:
		}
		select {
		case <-s.closed:
			return
		case <-time.After(250 * time.Millisecond):
		}
		if _, err := s.rdb.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
			s.log.Warn("checkpointing spool", "error", err)
		}
	}
}

// wrote tells the checkpointer there is something to fold in.
func (s *Spool) wrote() {
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

// Committed is signalled after each commit of new events. Signals coalesce:
// one pending signal stands for any number of commits.
func (s *Spool) Committed() <-chan struct{} { return s.commit }

// Depth is the number of events in the spool.
func (s *Spool) Depth() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.stats.Depth)
}

// Stats returns a snapshot of the counters.
func (s *Spool) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stats
}

// SpooledThrough is the highest seq ever committed to the spool, delivered
// or not: the chain entries above it are the ones a crash kept out.
func (s *Spool) SpooledThrough() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return max(s.stats.SpooledThrough, s.stats.DeliveredThrough)
}

// OldestAge is how long the oldest spooled event has waited since the agent
// observed it; 0 when the spool is empty.
func (s *Spool) OldestAge() time.Duration {
	var observed sql.NullInt64
	if err := s.rdb.QueryRow(`SELECT min(observed) FROM (SELECT observed FROM events ORDER BY seq LIMIT 1)`).Scan(&observed); err != nil || !observed.Valid {
		return 0
	}
	return max(0, time.Since(time.Unix(0, observed.Int64)))
}

// Oldest returns up to n events, pending loss events first, then the rest by
// seq, oldest first.
func (s *Spool) Oldest(ctx context.Context, n int) ([]Item, error) {
	if n <= 0 {
		return nil, nil
	}
	items, err := s.query(ctx, `SELECT seq, prev_hash, hash, canonical FROM events
		WHERE name = 'tripwire.agent.loss' ORDER BY seq LIMIT ?`, n)
	if err != nil {
		return nil, err
	}
	if len(items) < n {
		rest, err := s.query(ctx, `SELECT seq, prev_hash, hash, canonical FROM events
			WHERE name <> 'tripwire.agent.loss' ORDER BY seq LIMIT ?`, n-len(items))
		if err != nil {
			return nil, err
		}
		items = append(items, rest...)
	}
	return items, nil
}

func (s *Spool) query(ctx context.Context, q string, n int) ([]Item, error) {
	rows, err := s.rdb.QueryContext(ctx, q, n)
	if err != nil {
		return nil, fmt.Errorf("reading spool: %w", err)
	}
	defer rows.Close()
	var items []Item
	for rows.Next() {
		var seq int64
		var prev, hash string
		var canonical []byte
		if err := rows.Scan(&seq, &prev, &hash, &canonical); err != nil {
			return nil, fmt.Errorf("reading spool: %w", err)
		}
		e, err := event.ParseCanonical(canonical)
		if err != nil {
			return nil, fmt.Errorf("reading spooled seq %d: %w", seq, err)
		}
		e.PrevHash, e.Hash = prev, hash
		items = append(items, Item{ID: seq, Event: e})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading spool: %w", err)
	}
	return items, nil
}

// Delete removes acknowledged events and advances delivered_through.
func (s *Spool) Delete(ctx context.Context, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("deleting from spool: %w", err)
	}
	defer tx.Rollback()
	var removed, bytes int64
	var top int64
	for start := 0; start < len(ids); start += 500 {
		chunk := ids[start:min(start+500, len(ids))]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
			top = max(top, id)
		}
		q := `DELETE FROM events WHERE seq IN (?` + strings.Repeat(",?", len(chunk)-1) + `) RETURNING size`
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("deleting from spool: %w", err)
		}
		for rows.Next() {
			var size int64
			if err := rows.Scan(&size); err != nil {
				rows.Close()
				return fmt.Errorf("deleting from spool: %w", err)
			}
			removed++
			bytes += size
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("deleting from spool: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE meta SET value = max(value, ?) WHERE key = 'delivered_through'`, top); err != nil {
		return fmt.Errorf("deleting from spool: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("deleting from spool: %w", err)
	}
	s.mu.Lock()
	s.stats.Depth -= removed
	s.stats.Bytes -= bytes
	s.stats.DeliveredThrough = max(s.stats.DeliveredThrough, uint64(top))
	s.stats.Deletes++
	s.wrote()
	if s.stats.OverLimit && !s.overLocked() {
		s.stats.OverLimit = false
		s.log.Info("spool back within its limits", "tripwire.spool.depth", s.stats.Depth, "tripwire.spool.bytes", s.stats.Bytes)
	}
	s.mu.Unlock()
	return nil
}

func (s *Spool) overLocked() bool {
	return (s.opts.MaxEvents > 0 && s.stats.Depth > s.opts.MaxEvents) ||
		(s.opts.MaxBytes > 0 && s.stats.Bytes > s.opts.MaxBytes)
}
