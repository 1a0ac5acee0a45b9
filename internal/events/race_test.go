//go:build race

package events

// raceEnabled: the race detector is on (it slows the drain tests).
const raceEnabled = true
