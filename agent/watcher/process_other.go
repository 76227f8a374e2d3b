//go:build !linux

package watcher

// NewProcessWatcher polls the process table: macOS and Windows announce
// execs only to kernel extensions or entitled clients (Endpoint Security,
// ETW), so a process shorter than the poll interval can be missed.
func NewProcessWatcher(rules []ProcessRule, opts Options) (Watcher, error) {
	rs, err := compileExecRules(rules)
	if err != nil {
		return nil, err
	}
	return newExecPoll(rs, newProcTable(opts), opts), nil
}
