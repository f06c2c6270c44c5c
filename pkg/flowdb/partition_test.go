package flowdb

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/chserver"
)

func TestPartitionDay(t *testing.T) {
	for _, c := range []struct {
		in, want string
	}{
		{"'2026-03-02'", "2026-03-02"},
		{"2026-03-02", "2026-03-02"},
		{"'1970-01-01'", "1970-01-01"},
		{"'2026-3-02'", ""},
		{"'2026-02-30'", ""},                   // no such day
		{"'2026-03-0'' OR 1=1 --'", ""},        // SQL
		{"2000-01-0'", ""},                     // ten bytes, the old only check
		{"'2026-03-02'; DROP TABLE x --'", ""}, // SQL after a day
		{"'2026-03-02", ""},
		{"''2026-03-02''", ""},
		{"20260302", ""},
		{"'+2026-03-02'", ""},
		{"'２０２６-03-02'", ""},
		{"", ""},
	} {
		got, err := partitionDay(c.in)
		if c.want == "" {
			if err == nil || !errors.Is(err, ErrPartition) {
				t.Errorf("partitionDay(%q) = %q, %v; want ErrPartition", c.in, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("partitionDay(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

// FuzzPartitionDay: whatever the server names, what goes into the ALTER
// statement is a day of ten bytes of digits and dashes, or nothing.
func FuzzPartitionDay(f *testing.F) {
	for _, s := range []string{"'2026-03-02'", "2026-03-02", "x'); DROP TABLE t --", "'9999-12-31'", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		day, err := partitionDay(p)
		if err != nil {
			if day != "" || !errors.Is(err, ErrPartition) {
				t.Fatalf("%q: %q, %v", p, day, err)
			}
			return
		}
		if len(day) != 10 || strings.Trim(day, "0123456789-") != "" {
			t.Fatalf("%q gave %q", p, day)
		}
		if _, err := time.Parse(time.DateOnly, day); err != nil {
			t.Fatalf("%q gave %q: %v", p, day, err)
		}
	})
}

// TestDropBeforeHostilePartition: a flows table whose partitions are not
// days (made by something else, or a server that lies) ends retention
// with a clear error naming the partition; no statement is built from
// it, and the table and its rows stay.
func TestDropBeforeHostilePartition(t *testing.T) {
	ctx := context.Background()
	s := chserver.Start(t, 0, chserver.Options{})
	db := openTest(t, s.URL("", "", "fleet"))
	hostile := "2000-01-0'"
	for _, q := range []string{
		"CREATE DATABASE fleet",
		"CREATE TABLE fleet.flows (p String) ENGINE = MergeTree PARTITION BY p ORDER BY p",
		"INSERT INTO fleet.flows SELECT '" + strings.ReplaceAll(hostile, "'", "\\'") + "'",
	} {
		if err := db.conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_, err := db.DropBefore(ctx, time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC))
	if !errors.Is(err, ErrPartition) || !strings.Contains(err.Error(), `2000-01-0\'`) && !strings.Contains(err.Error(), "2000-01-0'") {
		t.Fatalf("DropBefore: %v, want ErrPartition naming the partition", err)
	}
	var n uint64
	if err := db.conn.QueryRow(ctx, "SELECT count() FROM fleet.flows").Scan(&n); err != nil || n != 1 {
		t.Errorf("the table holds %d rows (%v), want its one", n, err)
	}
}
