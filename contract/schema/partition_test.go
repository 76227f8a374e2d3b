package schema

import (
	"testing"
	"time"
)

func TestPartitionBounds(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(2026, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2028, 2, 29, 12, 0, 0, 0, time.FixedZone("east", 14*3600)), // Feb 28 UTC
	} {
		from, to, ok := PartitionBounds(PartitionName(at))
		if !ok || at.Before(from) || !at.Before(to) || to.Sub(from) != 24*time.Hour {
			t.Errorf("%s: %s holds [%s, %s), ok %v", at, PartitionName(at), from, to, ok)
		}
		from, to, ok = PartitionBounds(MonthlyPartitionName(at))
		if !ok || at.Before(from) || !at.Before(to) || from.Day() != 1 || to.Day() != 1 {
			t.Errorf("%s: %s holds [%s, %s), ok %v", at, MonthlyPartitionName(at), from, to, ok)
		}
	}
	for _, name := range []string{"alerts", "alerts_default", "alerts_2026_13", "alerts_2026_02_30", "alerts_2026_1_01", "audit_2026_01_01"} {
		if _, _, ok := PartitionBounds(name); ok {
			t.Errorf("%s parsed as a partition", name)
		}
	}
}
