package watcher

import (
	"errors"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/tripwire-sec/tripwire/internal/event"
)

// toolhelpTable lists processes with a Toolhelp32 snapshot and reads a new
// process's image path with QueryFullProcessImageName. The command line and
// the user would need another process's PEB and token: they are reported
// missing.
type toolhelpTable struct{}

func newProcTable(Options) procTable { return toolhelpTable{} }

func (toolhelpTable) list() ([]procEntry, error) {
	snap, err := windows.CreateToolhelp32Snapshot(windows.TH32CS_SNAPPROCESS, 0)
	if err != nil {
		return nil, err
	}
	defer windows.CloseHandle(snap)
	var pe windows.ProcessEntry32
	pe.Size = uint32(unsafe.Sizeof(pe))
	var out []procEntry
	for err = windows.Process32First(snap, &pe); err == nil; err = windows.Process32Next(snap, &pe) {
		// No start time without opening each process: a PID reused by the
		// same executable within one poll interval is not seen as new.
		out = append(out, procEntry{PID: int(pe.ProcessID), PPID: int(pe.ParentProcessID), UID: -1,
			Comm: commOf(utf16Name(pe.ExeFile[:]))})
	}
	if !errors.Is(err, windows.ERROR_NO_MORE_FILES) {
		return nil, err
	}
	return out, nil
}

func (toolhelpTable) detail(p *procEntry) {
	h, err := windows.OpenProcess(windows.PROCESS_QUERY_LIMITED_INFORMATION, false, uint32(p.PID))
	if err != nil {
		return
	}
	defer windows.CloseHandle(h)
	buf := make([]uint16, windows.MAX_LONG_PATH)
	n := uint32(len(buf))
	if err := windows.QueryFullProcessImageName(h, 0, &buf[0], &n); err == nil {
		p.Exe = windows.UTF16ToString(buf[:n])
	}
}

func (toolhelpTable) missing() []string {
	return []string{event.KeyProcessCommandLine, event.KeyProcessUserID, event.KeyProcessUserName}
}
