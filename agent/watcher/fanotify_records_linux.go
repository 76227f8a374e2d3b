package watcher

import (
	"encoding/binary"
	"errors"
	"strings"

	"golang.org/x/sys/unix"
)

// fanMeta is struct fanotify_event_metadata, decoded field by field: the
// buffer gives no alignment guarantee a pointer cast could rely on.
type fanMeta struct {
	eventLen uint32
	vers     uint8
	metaLen  uint16
	mask     uint64
	fd       int32
	pid      int32
}

func decodeFanMeta(b []byte) fanMeta {
	ne := binary.NativeEndian
	return fanMeta{eventLen: ne.Uint32(b[0:]), vers: b[4], metaLen: ne.Uint16(b[6:]),
		mask: ne.Uint64(b[8:]), fd: int32(ne.Uint32(b[16:])), pid: int32(ne.Uint32(b[20:]))}
}

// fanFID is one file-handle info record.
type fanFID struct {
	key  []byte // fsid, handle size, handle type, handle: how nodes are keyed
	name string
}

func (f *fanFID) fsid() (id [8]byte) { copy(id[:], f.key[:8]); return }

func (f *fanFID) handle() unix.FileHandle {
	ne := binary.NativeEndian
	return unix.NewFileHandle(int32(ne.Uint32(f.key[12:16])), f.key[16:])
}

type fanRecords struct {
	fid, dfid, oldDir, newDir *fanFID
}

var errFanRecord = errors.New("malformed fanotify info record")

// parseFanInfo parses the info records after the metadata. Every length is
// checked against what is left before it is used.
func parseFanInfo(b []byte) (fanRecords, error) {
	var r fanRecords
	for len(b) > 0 {
		if len(b) < 4 {
			return r, errFanRecord
		}
		typ, n := b[0], int(binary.NativeEndian.Uint16(b[2:4]))
		if n < 4 || n > len(b) {
			return r, errFanRecord
		}
		rec := b[4:n]
		b = b[n:]
		var dst **fanFID
		named := true
		switch typ {
		case unix.FAN_EVENT_INFO_TYPE_FID:
			dst, named = &r.fid, false
		case unix.FAN_EVENT_INFO_TYPE_DFID:
			dst, named = &r.dfid, false
		case unix.FAN_EVENT_INFO_TYPE_DFID_NAME:
			dst = &r.dfid
		case unix.FAN_EVENT_INFO_TYPE_OLD_DFID_NAME:
			dst = &r.oldDir
		case unix.FAN_EVENT_INFO_TYPE_NEW_DFID_NAME:
			dst = &r.newDir
		default:
			continue // pidfd, error, range, mount: not asked for
		}
		// fsid (8), handle_bytes (4), handle_type (4), f_handle[handle_bytes].
		if len(rec) < 16 {
			return r, errFanRecord
		}
		hb := int(binary.NativeEndian.Uint32(rec[8:12]))
		if hb == 0 || hb > maxHandleSize || 16+hb > len(rec) {
			return r, errFanRecord
		}
		f := &fanFID{key: rec[:16+hb]}
		if named {
			name := rec[16+hb:]
			end := 0
			for end < len(name) && name[end] != 0 {
				end++
			}
			if end == 0 || end == len(name) {
				return r, errFanRecord // empty or not NUL-terminated
			}
			f.name = string(name[:end])
			if f.name != "." && strings.ContainsRune(f.name, '/') {
				return r, errFanRecord
			}
		}
		*dst = f
	}
	return r, nil
}
