package watcher

import (
	"testing"
	"unsafe"

	"github.com/tripwire-sec/tripwire/bpf"
)

// fileSample lays a record out as file.bpf.c sends it: the header, then
// each name and exe slot at its full size, then argv's bytes.
func fileSample(h bpf.FileFileEvent, names, toNames, exe []string, args string) []byte {
	h.Depth, h.ToDepth, h.ExeN, h.ArgsLen = uint32(len(names)), uint32(len(toNames)), uint32(len(exe)), uint32(len(args))
	b := append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&h)), unsafe.Sizeof(h))...)
	slot := func(s string, size int) {
		b = append(b, s...)
		b = append(b, make([]byte, size-len(s))...)
	}
	for _, n := range names {
		slot(n, fileNameLen)
	}
	for _, n := range toNames {
		slot(n, fileNameLen)
	}
	for _, n := range exe {
		slot(n, fileExeLen)
	}
	return append(b, args...)
}

func TestParseFileRecord(t *testing.T) {
	h := bpf.FileFileEvent{Pid: 42}
	raw := fileSample(h, []string{"f", "sub"}, []string{"old"}, []string{"cat", "bin", "usr"}, "cat\x00sub/f\x00")
	r, ok := parseFileRecord(raw)
	if !ok {
		t.Fatal("a well-formed record was called malformed")
	}
	if got := joinBelow("/watched", r.names); got != "/watched/sub/f" {
		t.Errorf("path %q", got)
	}
	if got := joinBelow("", r.toNames); got != "/old" {
		t.Errorf("other side %q", got)
	}
	if got := joinSlots(r.exe); got != "/usr/bin/cat" {
		t.Errorf("exe %q", got)
	}
	if got := string(bpfBytes(r.args)); got != "cat\x00sub/f\x00" || r.Pid != 42 {
		t.Errorf("args %q pid %d", got, r.Pid)
	}

	// A record shorter than the lengths it declares, or declaring more
	// than the kernel can write, is malformed, never read past its end.
	for name, bad := range map[string][]byte{
		"short header": raw[:10],
		"short argv":   raw[:len(raw)-1],
		"short names":  raw[:int(unsafe.Sizeof(h))+fileNameLen],
		"deep":         fileSample(h, make([]string, fileEBPFDepth+1), nil, nil, ""),
		"long argv":    fileSample(h, nil, nil, nil, string(make([]byte, fileArgsLen+1))),
	} {
		if _, ok := parseFileRecord(bad); ok {
			t.Errorf("%s: parsed", name)
		}
	}
	if r, ok := parseFileRecord(fileSample(h, nil, nil, nil, "")); !ok || r.names != nil || len(r.args) != 0 {
		t.Errorf("an empty tail: ok %v", ok)
	}
}
