package auditchain

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
)

// ReadEntries calls fn for each entry of the log at path whose seq is at
// least fromSeq, in order. It does not verify hashes (use Verify); a line
// that is not an entry is an error. Payload is only valid during fn.
func ReadEntries(path string, fromSeq uint64, fn func(Entry) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening audit log: %w", err)
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var long []byte
	for n := int64(1); ; {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, line...)
			continue
		}
		if long != nil {
			line, long = append(long, line...), nil
		}
		if errors.Is(err, io.EOF) {
			if len(line) > 0 {
				return fmt.Errorf("reading audit log: line %d is incomplete", n)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading audit log: %w", err)
		}
		var raw rawEntry
		err = parseLine(line[:len(line)-1], &raw)
		var e Entry
		if err == nil {
			e, err = raw.entry()
		}
		if err != nil {
			return fmt.Errorf("reading audit log: line %d: %w", n, err)
		}
		if e.Seq >= fromSeq {
			if err := fn(e); err != nil {
				return err
			}
		}
		n++
	}
}
