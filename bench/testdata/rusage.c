/*
 * rusage: run a command and report its wall time and peak RSS.
 *
 * usage: rusage PROG ARGS...   (writes "<wall ns> <ru_maxrss KiB> <wait status>\n" to fd 3)
 *
 * ru_maxrss of a child counts the memory it had before execve too. A child
 * started by the Go benchmark shares the benchmark's address space up to
 * its execve, so its ru_maxrss would be the benchmark's own size. This
 * launcher is a tiny static program that starts the runtime with vfork:
 * what the runtime inherits before execve is this launcher's few pages.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct timespec a, b;
	struct rusage ru;
	int status;
	pid_t pid;

	if (argc < 2)
		return 2;
	if (fcntl(3, F_SETFD, FD_CLOEXEC) < 0)
		return 2;
	clock_gettime(CLOCK_MONOTONIC, &a);
	pid = vfork();
	if (pid < 0)
		return 2;
	if (pid == 0) {
		execv(argv[1], argv + 1);
		_exit(127);
	}
	if (wait4(pid, &status, 0, &ru) < 0)
		return 2;
	clock_gettime(CLOCK_MONOTONIC, &b);
	dprintf(3, "%lld %ld %d\n",
		(long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec),
		ru.ru_maxrss, status);
	return 0;
}
