// Joins existing namespaces before the Go runtime starts; see doc.go.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define HULL_MAX_NS 16

static int hull_syncfd = -1;

static void hull_report(const char *what, const char *path, int err)
{
	char buf[1024];
	int n;

	n = snprintf(buf, sizeof(buf),
		     "{\"type\":\"error\",\"msg\":\"nsenter: %s %s: %s\"}\n",
		     what, path, strerror(err));
	if (hull_syncfd >= 0 && n > 0)
		(void)!write(hull_syncfd, buf, (size_t)n);
	else
		fprintf(stderr, "%s", buf);
	_exit(1);
}

// hull_nsenter runs in every hull-runtime process before main. It does
// nothing unless _HULL_NSENTER names namespaces to join, as
// "user:/proc/1/ns/user,net:/var/run/netns/x,...", user first, then
// unshares the namespaces _HULL_UNSHARE (clone flags, decimal) asks for.
__attribute__((constructor)) static void hull_nsenter(void)
{
	const char *spec = getenv("_HULL_NSENTER");
	const char *sfd = getenv("_HULL_SYNCFD");
	const char *unshare_env = getenv("_HULL_UNSHARE");
	char *copy, *tok, *save = NULL;
	int fds[HULL_MAX_NS];
	char *paths[HULL_MAX_NS];
	char *types[HULL_MAX_NS];
	int n = 0, i, joinpid = 0, joinuser = 0;

	if ((spec == NULL || *spec == '\0') &&
	    (unshare_env == NULL || *unshare_env == '\0'))
		return;
	if (spec == NULL)
		spec = "";
	if (sfd != NULL)
		hull_syncfd = atoi(sfd);
	copy = strdup(spec);
	if (copy == NULL)
		hull_report("parse", "spec", ENOMEM);
	// Open every path first: joining the mount namespace changes what
	// later paths resolve to.
	for (tok = strtok_r(copy, ",", &save); tok != NULL && n < HULL_MAX_NS;
	     tok = strtok_r(NULL, ",", &save)) {
		char *colon = strchr(tok, ':');
		if (colon == NULL)
			hull_report("parse", tok, EINVAL);
		*colon = '\0';
		types[n] = tok;
		paths[n] = colon + 1;
		fds[n] = open(paths[n], O_RDONLY | O_CLOEXEC);
		if (fds[n] < 0)
			hull_report(types[n], paths[n], errno);
		if (strcmp(types[n], "pid") == 0 || strcmp(types[n], "time") == 0)
			joinpid = 1;
		if (strcmp(types[n], "user") == 0)
			joinuser = 1;
		n++;
	}
	for (i = 0; i < n; i++) {
		if (setns(fds[i], 0) < 0)
			hull_report(types[i], paths[i], errno);
		close(fds[i]);
		if (strcmp(types[i], "user") == 0) {
			// Become root of the joined user namespace.
			if (setresgid(0, 0, 0) < 0)
				hull_report("setresgid in", paths[i], errno);
			if (setresuid(0, 0, 0) < 0)
				hull_report("setresuid in", paths[i], errno);
		}
	}
	(void)joinuser;
	unsetenv("_HULL_NSENTER");
	if (unshare_env != NULL && *unshare_env != '\0') {
		int flags = atoi(unshare_env);
		// New namespaces are made after the joins, so that they belong
		// to a joined user namespace.
		if (flags != 0 && unshare(flags) < 0)
			hull_report("unshare", unshare_env, errno);
		if (flags & CLONE_NEWTIME) {
			// linux.timeOffsets: written before any process enters.
			const char *off = getenv("_HULL_TIMENS_OFFSETS");
			if (off != NULL && *off != '\0') {
				int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
				if (fd < 0 || write(fd, off, strlen(off)) < 0)
					hull_report("write", "/proc/self/timens_offsets", errno);
				close(fd);
			}
			unsetenv("_HULL_TIMENS_OFFSETS");
		}
		if (flags & (CLONE_NEWPID | CLONE_NEWTIME))
			joinpid = 1;
		unsetenv("_HULL_UNSHARE");
	}
	if (joinpid) {
		// setns(CLONE_NEWPID) only moves children: fork so that the
		// process that goes on into Go is inside the namespace.
		pid_t pid = fork();
		if (pid < 0)
			hull_report("fork into", "pid namespace", errno);
		if (pid > 0) {
			char buf[64];
			int len = snprintf(buf, sizeof(buf),
					   "{\"type\":\"pid\",\"pid\":%d}\n", pid);
			if (hull_syncfd >= 0)
				(void)!write(hull_syncfd, buf, (size_t)len);
			_exit(0);
		}
		if (getenv("_HULL_SETSID") != NULL)
			(void)setsid();
	}
	free(copy);
}
