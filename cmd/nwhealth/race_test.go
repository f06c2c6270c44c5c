//go:build race

package main

// raceFactor scales memory bounds: the race detector's shadow memory.
const raceFactor = 2
