//go:build cgo

package main

/*
#include <string.h>
#include <sys/prctl.h>

// hull_slack_orig is the timer slack hull-runtime was started with, 0 when
// hull_slack left it unchanged.
static unsigned long hull_slack_orig;

// hull_slack raises the timer slack of a hull-runtime CLI call to 1 ms
// before the Go runtime starts its threads (sysmon first), which inherit
// it; see runtime/timerslack. `hull-runtime init` keeps what it inherited:
// it puts the original back itself before it execve's the container's
// process.
__attribute__((constructor)) static void hull_slack(int argc, char **argv)
{
	const long raised = 1000000;
	int r;

	if (argc > 1 && argv != NULL && argv[1] != NULL && strcmp(argv[1], "init") == 0)
		return;
	r = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
	if (r <= 0 || r >= raised)
		return;
	if (prctl(PR_SET_TIMERSLACK, raised, 0, 0, 0) == 0)
		hull_slack_orig = (unsigned long)r;
}

static unsigned long hull_slack_original(void) { return hull_slack_orig; }
*/
import "C"

// slackOriginal is the timer slack the CLI was started with, 0 when the
// constructor did not raise it.
func slackOriginal() uint64 { return uint64(C.hull_slack_original()) }
