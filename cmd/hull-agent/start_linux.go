package main

/*
#include <time.h>

// hull_agent_t0 is CLOCK_MONOTONIC when the C library had started and
// ran its constructors: before the Go runtime's start (the agent's trace
// tells the exec and libc start from the Go runtime's and the packages'
// initialization).
static long long hull_agent_t0;

__attribute__((constructor)) static void hull_agent_stamp(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	hull_agent_t0 = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long hull_agent_start(void) { return hull_agent_t0; }
*/
import "C"

// processStartNs is CLOCK_MONOTONIC when the C library had started, before
// the Go runtime (0 if unknown).
func processStartNs() int64 { return int64(C.hull_agent_start()) }
