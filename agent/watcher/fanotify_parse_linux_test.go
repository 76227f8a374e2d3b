package watcher

import (
	"encoding/binary"
	"io"
	"log/slog"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tripwire-sec/tripwire/internal/event"
)

func fanMetaBytes(eventLen uint32, mask uint64, pid int32) []byte {
	b := make([]byte, fanMetaSize)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], eventLen)
	b[4] = unix.FANOTIFY_METADATA_VERSION
	ne.PutUint16(b[6:], uint16(fanMetaSize))
	ne.PutUint64(b[8:], mask)
	ne.PutUint32(b[16:], uint32(0xffffffff)) // FAN_NOFD
	ne.PutUint32(b[20:], uint32(pid))
	return b
}

func fanFIDRecord(typ uint8, handle []byte, name string) []byte {
	body := make([]byte, 16+len(handle))
	binary.NativeEndian.PutUint32(body[8:], uint32(len(handle)))
	binary.NativeEndian.PutUint32(body[12:], 1)
	copy(body[16:], handle)
	if name != "" {
		body = append(body, name...)
		body = append(body, 0)
	}
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	rec := []byte{typ, 0, 0, 0}
	binary.NativeEndian.PutUint16(rec[2:], uint16(4+len(body)))
	return append(rec, body...)
}

func testFanWatcher(t testing.TB) *fanotifyWatcher {
	rs, err := compileFileRules(nil)
	if err != nil {
		t.Fatal(err)
	}
	return newFanotifyWatcher(rs, Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

func TestFanotifyOverflowIsLoss(t *testing.T) {
	w := testFanWatcher(t)
	s := newTripSink()
	w.sessions[fanSession{pid: 1, path: "/x"}] = sessAccessed
	w.handleBatch(fanMetaBytes(uint32(fanMetaSize), unix.FAN_Q_OVERFLOW, 0), s)
	if s.lost[event.LossKernelOverflow] != 1 || w.overflows.Load() != 1 || len(w.sessions) != 0 {
		t.Errorf("lost %v overflows %d sessions %d", s.lost, w.overflows.Load(), len(w.sessions))
	}
}

func TestFanotifyMalformedRecords(t *testing.T) {
	good := fanFIDRecord(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, []byte{1, 2, 3, 4, 5, 6, 7, 8}, "f")
	if r, err := parseFanInfo(good); err != nil || r.dfid == nil || r.dfid.name != "f" || len(r.dfid.key) != 24 {
		t.Fatalf("good record: %+v %v", r, err)
	}
	bad := map[string][]byte{
		"short header":     {2, 0, 8},
		"length past end":  append(append([]byte(nil), good[:4]...), 0, 0),
		"length too small": {2, 0, 2, 0},
		"handle past end": func() []byte {
			b := append([]byte(nil), good...)
			binary.NativeEndian.PutUint32(b[4+8:], 200)
			return b
		}(),
		"zero handle":      fanFIDRecord(unix.FAN_EVENT_INFO_TYPE_FID, nil, ""),
		"name without nul": fanFIDRecord(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, []byte{1, 2, 3, 4}, "abc")[:4+16+4+3],
		"name with slash":  fanFIDRecord(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, []byte{1, 2, 3, 4}, "../x"),
	}
	for what, b := range bad {
		if len(b) >= 4 && what == "name without nul" {
			binary.NativeEndian.PutUint16(b[2:], uint16(len(b)))
		}
		if _, err := parseFanInfo(b); err == nil {
			t.Errorf("%s: accepted", what)
		}
	}

	// Malformed events are counted and skipped; the batch goes on when the
	// lengths can be trusted and stops when they cannot.
	w := testFanWatcher(t)
	s := newTripSink()
	ev := append(fanMetaBytes(uint32(fanMetaSize+4), unix.FAN_OPEN, 99999), 2, 0, 2, 0)
	overflow := fanMetaBytes(uint32(fanMetaSize), unix.FAN_Q_OVERFLOW, 0)
	w.handleBatch(append(append([]byte(nil), ev...), overflow...), s)
	if w.malformed.Load() != 1 || s.lost[event.LossKernelOverflow] != 1 {
		t.Errorf("malformed %d lost %v", w.malformed.Load(), s.lost)
	}
	for what, b := range map[string][]byte{
		"truncated metadata":          overflow[:10],
		"event past buffer":           fanMetaBytes(uint32(fanMetaSize+100), unix.FAN_OPEN, 1),
		"wrong version":               func() []byte { b := fanMetaBytes(uint32(fanMetaSize), unix.FAN_OPEN, 1); b[4] = 2; return b }(),
		"event shorter than metadata": fanMetaBytes(8, unix.FAN_OPEN, 1),
	} {
		before := w.malformed.Load()
		w.handleBatch(append(append([]byte(nil), b...), overflow...), s)
		if w.malformed.Load() != before+1 {
			t.Errorf("%s: not counted", what)
		}
	}
	if len(s.all()) != 0 {
		t.Errorf("trips from garbage: %s", describe(s.all()))
	}
}

// FuzzFanotifyEvent feeds arbitrary info records to the event handler: it
// must never panic, whatever the kernel (or a bug) hands it.
func FuzzFanotifyEvent(f *testing.F) {
	f.Add(uint64(unix.FAN_OPEN|unix.FAN_ACCESS), fanFIDRecord(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, []byte{1, 2, 3, 4, 5, 6, 7, 8}, "f"))
	f.Add(uint64(unix.FAN_RENAME), append(fanFIDRecord(unix.FAN_EVENT_INFO_TYPE_OLD_DFID_NAME, []byte{1, 2, 3, 4}, "a"),
		fanFIDRecord(unix.FAN_EVENT_INFO_TYPE_NEW_DFID_NAME, []byte{1, 2, 3, 4}, "b")...))
	f.Add(uint64(unix.FAN_CREATE|unix.FAN_ONDIR), fanFIDRecord(unix.FAN_EVENT_INFO_TYPE_DFID_NAME, []byte{9}, "."))
	w := testFanWatcher(f)
	rs, _ := compileFileRules([]FileRule{{Name: "r", Severity: event.SeverityInfo, Paths: []string{"/nonexistent"}}})
	rs.dirs = map[string]*fileRule{"/nonexistent": rs.exact["/nonexistent"]}
	rs.recursive, rs.files = map[string]*fileRule{}, map[string]*fileRule{}
	w.rules = rs
	w.nodes[string(fanFIDRecord(unix.FAN_EVENT_INFO_TYPE_FID, []byte{1, 2, 3, 4}, "")[4:4+16+4])] =
		&fanNode{path: "/nonexistent", dir: true, rule: rs.exact["/nonexistent"]}
	f.Fuzz(func(t *testing.T, mask uint64, info []byte) {
		w.actors = map[int32]fanActor{}
		w.handleEvent(fanMeta{mask: mask, pid: 1 << 30}, info, timeZero, 0, newTripSink())
	})
}

var timeZero time.Time
