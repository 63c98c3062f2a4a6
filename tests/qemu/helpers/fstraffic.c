// SPDX-License-Identifier: GPL-2.0
// fstraffic: ordinary file traffic on a WFS mount, for a manager (or
// wfsfuzz posing as one) to serve, until it is killed.
//
//   fstraffic DIR
//
// Round i reads file f<i> (a LOOKUP and a READ), stats x<i> (a LOOKUP);
// every tenth round takes and tests a POSIX write lock on f<i> and closes
// it (LOCK requests, the unlock among them); every seventh grows f<i> to
// 9000 bytes and truncates it to 10 (SETSIZE requests); every fifth
// makes c<i> (O_CREAT | O_EXCL: CREATE), renames it to r<i> (RENAME) and
// removes it (UNLINK), if the manager said it was made. Every error is
// ignored: the manager decides what exists. One process does it all, so
// the next request follows the last answer at once: a shell loop forks a
// process per operation, which under the debug kernel (KASAN, lockdep)
// left the fuzzer waiting for traffic most of its run.
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char path[4096], other[4096], buf[4096];
	struct stat st;

	if (argc != 2) {
		fprintf(stderr, "usage: fstraffic DIR\n");
		return 2;
	}
	for (unsigned long i = 1;; i++) {
		int fd;

		snprintf(path, sizeof(path), "%s/f%lu", argv[1], i);
		fd = open(path, O_RDONLY);
		if (fd >= 0) {
			while (read(fd, buf, sizeof(buf)) > 0)
				;
			close(fd);
		}
		snprintf(other, sizeof(other), "%s/x%lu", argv[1], i);
		(void)stat(other, &st);
		if (i % 10 == 0) {
			struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

			fd = open(path, O_RDWR);
			if (fd >= 0) {
				(void)fcntl(fd, F_GETLK, &fl);
				fl.l_type = F_WRLCK;
				(void)fcntl(fd, F_SETLK, &fl);
				close(fd);
			}
		}
		if (i % 5 == 0) {
			snprintf(other, sizeof(other), "%s/c%lu", argv[1], i);
			fd = open(other, O_RDWR | O_CREAT | O_EXCL, 0644);
			if (fd >= 0) {
				char to[4096];

				close(fd);
				snprintf(to, sizeof(to), "%s/r%lu", argv[1], i);
				if (rename(other, to) == 0)
					(void)unlink(to);
				else
					(void)unlink(other);
			}
		}
		if (i % 7 == 0) {
			fd = open(path, O_RDWR);
			if (fd >= 0) {
				struct timespec t[2] = { { .tv_sec = 86400 * (long)i }, { .tv_sec = 86400 * (long)i } };

				(void)ftruncate(fd, 9000);
				(void)ftruncate(fd, 10);
				/* A time set (SETTIMES), as touch -d does. */
				(void)futimens(fd, t);
				close(fd);
			}
		}
	}
}
