// Package migrations holds TripWire's PostgreSQL schema, embedded, and
// applies it. Use Apply at start; then EnsurePartitions and DropExpired keep
// the monthly alert partitions in shape.
package migrations

import "embed"

//go:embed *.sql
var files embed.FS
