//go:build !linux

package bigbuf

func mapRegion(n int) []byte { return make([]byte, n) }
