// SPDX-License-Identifier: GPL-2.0
// lockx: file locks from the command line, for the lock tests.
//
//   lockx FILE STEP...   opens FILE read-write and runs the STEPs in order
//                        in one process, so that locks taken by one step
//                        are held by the next ones:
//
//   set KIND TYPE START LEN    F_SETLK (flock: LOCK_NB); KIND is posix, ofd
//                              or flock; TYPE r, w or u; LEN 0 is "to the
//                              end" (flock ignores START and LEN)
//   wait KIND TYPE START LEN   the same, waiting (F_SETLKW; flock without
//                              LOCK_NB)
//   get KIND TYPE START LEN    F_GETLK (posix, ofd): prints "none", or
//                              "r|w START LEN PID" of the lock in the way
//   sleep SECS                 holds what it has for SECS seconds
//   alarm SECS                 a SIGALRM in SECS seconds, caught by a
//                              handler that does nothing, without
//                              SA_RESTART: a wait it interrupts fails EINTR
//   touch PATH                 creates PATH (to tell a script it is there)
//   count N                    N times: F_SETLKW a write lock on bytes
//                              0..8, read the u64 there with pread, write
//                              it back plus one with pwrite, unlock; prints
//                              the last value it wrote
//   fcount N                   the same under flock(LOCK_EX)
//
// Each set, wait and get prints "ok" (get: its answer) or the errno's name
// (EAGAIN, EDEADLK, ENOLCK, EINTR, ...). The exit status is 0 if every
// step succeeded, 1 if a set or wait was refused with EAGAIN or EWOULDBLOCK
// (and the steps after it did not run), 2 for any other failure.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

static void on_alarm(int sig)
{
	(void)sig;
}

static const char *ename(int e)
{
	switch (e) {
	case EAGAIN: return "EAGAIN";
	case EACCES: return "EACCES";
	case EDEADLK: return "EDEADLK";
	case ENOLCK: return "ENOLCK";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case EINVAL: return "EINVAL";
	case EBADF: return "EBADF";
	default: return strerror(e);
	}
}

static int fail_code(int e)
{
	return (e == EAGAIN || e == EWOULDBLOCK || e == EACCES) ? 1 : 2;
}

static short ltype(const char *t)
{
	if (!strcmp(t, "r"))
		return F_RDLCK;
	if (!strcmp(t, "w"))
		return F_WRLCK;
	if (!strcmp(t, "u"))
		return F_UNLCK;
	fprintf(stderr, "lockx: bad type %s\n", t);
	exit(2);
}

/* One set, wait or get; returns 0, or the errno. */
static int lock_step(int fd, const char *op, const char *kind, const char *type,
		     long long start, long long len)
{
	struct flock fl = {
		.l_type = ltype(type),
		.l_whence = SEEK_SET,
		.l_start = start,
		.l_len = len,
	};
	int cmd;

	if (!strcmp(kind, "flock")) {
		int how = fl.l_type == F_RDLCK ? LOCK_SH :
			  fl.l_type == F_WRLCK ? LOCK_EX : LOCK_UN;

		if (!strcmp(op, "set"))
			how |= LOCK_NB;
		else if (strcmp(op, "wait"))
			return EINVAL;
		return flock(fd, how) ? errno : 0;
	}
	if (!strcmp(kind, "posix"))
		cmd = !strcmp(op, "set") ? F_SETLK : !strcmp(op, "wait") ? F_SETLKW : F_GETLK;
	else if (!strcmp(kind, "ofd"))
		cmd = !strcmp(op, "set") ? F_OFD_SETLK :
		      !strcmp(op, "wait") ? F_OFD_SETLKW : F_OFD_GETLK;
	else
		return EINVAL;
	if (fcntl(fd, cmd, &fl))
		return errno;
	if (!strcmp(op, "get")) {
		if (fl.l_type == F_UNLCK)
			printf("none\n");
		else
			printf("%s %lld %lld %d\n", fl.l_type == F_RDLCK ? "r" : "w",
			       (long long)fl.l_start, (long long)fl.l_len, fl.l_pid);
		fflush(stdout);
	}
	return 0;
}

static int counter(int fd, long n, int use_flock)
{
	uint64_t v = 0;
	struct flock lk = { .l_whence = SEEK_SET, .l_start = 0, .l_len = 8 };

	for (long i = 0; i < n; i++) {
		if (use_flock) {
			if (flock(fd, LOCK_EX))
				return errno;
		} else {
			lk.l_type = F_WRLCK;
			if (fcntl(fd, F_SETLKW, &lk))
				return errno;
		}
		if (pread(fd, &v, 8, 0) != 8)
			return errno ? errno : EIO;
		v++;
		if (pwrite(fd, &v, 8, 0) != 8)
			return errno ? errno : EIO;
		if (use_flock) {
			if (flock(fd, LOCK_UN))
				return errno;
		} else {
			lk.l_type = F_UNLCK;
			if (fcntl(fd, F_SETLK, &lk))
				return errno;
		}
	}
	printf("%llu\n", (unsigned long long)v);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	int fd, i = 2;

	if (argc < 3) {
		fprintf(stderr, "usage: lockx FILE STEP...\n");
		return 2;
	}
	fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "lockx: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (i < argc) {
		const char *op = argv[i];
		int e;

		if (!strcmp(op, "set") || !strcmp(op, "wait") || !strcmp(op, "get")) {
			if (i + 4 >= argc) {
				fprintf(stderr, "lockx: %s needs KIND TYPE START LEN\n", op);
				return 2;
			}
			e = lock_step(fd, op, argv[i + 1], argv[i + 2], atoll(argv[i + 3]),
				      atoll(argv[i + 4]));
			i += 5;
			if (e) {
				printf("%s\n", ename(e));
				return fail_code(e);
			}
			if (strcmp(op, "get"))
				printf("ok\n");
		} else if (!strcmp(op, "alarm") && i + 1 < argc) {
			struct sigaction sa = { .sa_handler = on_alarm };

			sigemptyset(&sa.sa_mask);
			sigaction(SIGALRM, &sa, NULL);
			alarm(atoi(argv[i + 1]));
			i += 2;
		} else if (!strcmp(op, "sleep") && i + 1 < argc) {
			sleep(atoi(argv[i + 1]));
			i += 2;
		} else if (!strcmp(op, "touch") && i + 1 < argc) {
			int t = open(argv[i + 1], O_CREAT | O_WRONLY, 0644);

			if (t < 0) {
				fprintf(stderr, "lockx: %s: %s\n", argv[i + 1], strerror(errno));
				return 2;
			}
			close(t);
			i += 2;
		} else if ((!strcmp(op, "count") || !strcmp(op, "fcount")) && i + 1 < argc) {
			e = counter(fd, atol(argv[i + 1]), op[0] == 'f');
			i += 2;
			if (e) {
				printf("%s\n", ename(e));
				return 2;
			}
		} else {
			fprintf(stderr, "lockx: bad step %s\n", op);
			return 2;
		}
	}
	return 0;
}
