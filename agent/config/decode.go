package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/tripwire-sec/tripwire/contract/rules"
)

// Error is one problem in a config file, placed at the line of the key (or
// value) at fault.
type Error = rules.Error

// decoder checks the config's sections with the rules package's YAML
// checker, the one the rules themselves are checked with.
type decoder struct {
	*rules.Decoder
	checked []rules.Rule // as checked, for checks that span sections
}

// size accepts a byte count with an optional unit: 1048576, 512KiB, 64MiB, 1GiB.
func (d *decoder) size(m map[string]rules.Field, key string, dst *int64) {
	f, ok := m[key]
	if !ok {
		return
	}
	s, ok := d.Scalar(f)
	if !ok {
		return
	}
	v, err := parseSize(s)
	if err != nil {
		d.Errorf(f.Value, f.Path, "%v", err)
		return
	}
	*dst = v
}

func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}}
	mult := int64(1)
	num := strings.TrimSpace(s)
	for _, u := range units {
		if strings.HasSuffix(num, u.suffix) {
			mult = u.mult
			num = strings.TrimSpace(strings.TrimSuffix(num, u.suffix))
			break
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v <= 0 || v > (1<<50)/mult {
		return 0, fmt.Errorf("want a positive size such as 268435456 or 256MiB, got %q", s)
	}
	return v * mult, nil
}
