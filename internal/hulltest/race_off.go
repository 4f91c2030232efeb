//go:build !race

package hulltest

const raceEnabled = false
