//go:build race

package store

// raceBuild: the race detector schedules goroutines otherwise, so tests
// that depend on when the write loop runs assert less.
const raceBuild = true
