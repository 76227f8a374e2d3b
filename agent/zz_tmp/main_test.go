package zz

import (
	"testing"

	"github.com/cilium/ebpf"
)

func TestLoad(t *testing.T) {
	spec, err := ebpf.LoadCollectionSpec("/tmp/kt/s.o")
	if err != nil {
		t.Fatal(err)
	}
	for n, p := range spec.Programs {
		prog, err := ebpf.NewProgramWithOptions(p, ebpf.ProgramOptions{LogLevel: ebpf.LogLevelInstruction | ebpf.LogLevelStats})
		t.Logf("%s %v %v", n, err, prog)
		if prog != nil {
			t.Log(prog.VerifierLog)
		}
	}
}
