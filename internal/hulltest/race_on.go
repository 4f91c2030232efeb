//go:build race

package hulltest

const raceEnabled = true
