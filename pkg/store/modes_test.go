package store

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/nwhealth/nwhealth/internal/testenv"
)

// statOf is a path's mode and group, not following a link.
func statOf(t *testing.T, p string) (os.FileMode, uint32) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode(), fi.Sys().(*syscall.Stat_t).Gid
}

// TestStoreModes: a store's packets are no other user's business. Under
// the common umask 022, a new store is 0750 with the set-group-ID bit and
// its files 0640 of the store's group; a group given to the directory
// first passes to every file; a store made before (0755, files 0644)
// keeps its files' modes, is written and queried, and its new files are
// the owner's only.
func TestStoreModes(t *testing.T) {
	testenv.Umask(t, 0o022)
	start := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	pkts := genPackets(2000, start)
	const dirMode = 0o750 | os.ModeDir | os.ModeSetgid

	t.Run("new", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "store")
		writeStore(t, dir, pkts, WriterOptions{BlockSize: 8 << 10, ShardSize: 64 << 10})
		for _, d := range []string{filepath.Dir(dir), dir, filepath.Join(dir, shardsDir)} {
			if m, _ := statOf(t, d); m != dirMode {
				t.Errorf("%s: %v, want %v", d, m, dirMode)
			}
		}
		files := 0
		for _, d := range []string{dir, filepath.Join(dir, shardsDir)} {
			ents, _ := os.ReadDir(d)
			for _, e := range ents {
				if e.IsDir() {
					continue
				}
				files++
				if m, _ := statOf(t, filepath.Join(d, e.Name())); m != 0o640 {
					t.Errorf("%s: %v, want -rw-r-----", e.Name(), m)
				}
			}
		}
		if files < 5 { // LOCK, RESERVE and a shard's three files at least
			t.Errorf("%d files checked", files)
		}
	})

	t.Run("group", func(t *testing.T) {
		testenv.Root(t)
		dir := filepath.Join(t.TempDir(), "store")
		if err := os.Mkdir(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		const gid = 12345 // the analysts' group
		if err := os.Chown(dir, 0, gid); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o750|os.ModeSetgid); err != nil {
			t.Fatal(err)
		}
		writeStore(t, dir, pkts, WriterOptions{BlockSize: 8 << 10})
		n := 0
		filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			n++
			if g := fi.Sys().(*syscall.Stat_t).Gid; g != gid {
				t.Errorf("%s: group %d, want the store's %d", p, g, gid)
			}
			return nil
		})
		if testenv.NoOtherAccess(t, dir) != n || n < 7 {
			t.Errorf("%d entries", n)
		}
	})

	t.Run("before", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "store")
		first := len(pkts) / 2
		writeStore(t, dir, pkts[:first], WriterOptions{BlockSize: 8 << 10})
		// As an older nwhealth left it.
		old := map[string]bool{}
		filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			mode := os.FileMode(0o644)
			if fi.IsDir() {
				mode = 0o755
			} else {
				old[p] = true
			}
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
			return nil
		})
		st := writeStore(t, dir, pkts[first:], WriterOptions{BlockSize: 8 << 10})
		got, err := runQuery(t, []*Store{st}, Selector{})
		if err != nil {
			t.Fatal(err)
		}
		samePackets(t, got, pkts)
		fresh := 0
		filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			want := os.FileMode(0o600)
			switch {
			case fi.IsDir():
				want = 0o755 | os.ModeDir
			case old[p]:
				want = 0o644
			default:
				fresh++
			}
			if fi.Mode() != want {
				t.Errorf("%s: %v, want %v", p, fi.Mode(), want)
			}
			return nil
		})
		if fresh < 3 {
			t.Errorf("%d new files checked", fresh)
		}
	})
}
