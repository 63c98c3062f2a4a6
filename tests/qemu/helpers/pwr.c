// SPDX-License-Identifier: GPL-2.0
// pwr FILE OFFSET TEXT [fsync]: one pwrite(2) of TEXT at OFFSET of FILE;
// prints the number of bytes written. With "fsync", then calls fsync(2).
// A failed pwrite prints "pwr: pwrite: <error>" and exits with 1, a failed
// fsync "pwr: fsync: <error>" and exits with 3.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	ssize_t n;
	int fd;

	if (argc != 4 && !(argc == 5 && strcmp(argv[4], "fsync") == 0)) {
		fprintf(stderr, "usage: pwr FILE OFFSET TEXT [fsync]\n");
		return 2;
	}
	fd = open(argv[1], O_WRONLY);
	if (fd < 0) {
		fprintf(stderr, "pwr: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	n = pwrite(fd, argv[3], strlen(argv[3]), strtoll(argv[2], NULL, 0));
	if (n < 0) {
		fprintf(stderr, "pwr: pwrite: %s\n", strerror(errno));
		return 1;
	}
	printf("%zd\n", n);
	if (argc == 5 && fsync(fd) != 0) {
		fprintf(stderr, "pwr: fsync: %s\n", strerror(errno));
		return 3;
	}
	return 0;
}
