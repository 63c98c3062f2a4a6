// SPDX-License-Identifier: GPL-2.0
// lsdir DIR: lists DIR's entries one per line, in the order getdents64
// returns them, and exits 1 with the errno if opening or any getdents64
// call fails. (busybox ls silently treats a failing readdir as the end.)
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char buf[4096];
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: lsdir DIR\n");
		return 2;
	}
	fd = open(argv[1], O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		fprintf(stderr, "lsdir: open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	for (;;) {
		long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
		long off = 0;

		if (n < 0) {
			fprintf(stderr, "lsdir: getdents64 %s: %s\n", argv[1], strerror(errno));
			return 1;
		}
		if (n == 0)
			return 0;
		while (off < n) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);

			printf("%s\n", d->d_name);
			off += d->d_reclen;
		}
	}
}
