// SPDX-License-Identifier: GPL-2.0
// mmapwrite FILE LEN OFFSET TEXT [sync]: maps LEN bytes of FILE read-write
// (MAP_SHARED), copies TEXT to OFFSET through the mapping and, with
// "sync", flushes it with msync(MS_SYNC). A fault the kernel cannot satisfy
// kills it with SIGBUS (status 135); a failed msync prints its error and
// exits with 3.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	volatile unsigned char *p;
	size_t len, off, n, i;
	int fd;

	if (argc != 5 && !(argc == 6 && strcmp(argv[5], "sync") == 0)) {
		fprintf(stderr, "usage: mmapwrite FILE LEN OFFSET TEXT [sync]\n");
		return 2;
	}
	len = strtoull(argv[2], NULL, 0);
	off = strtoull(argv[3], NULL, 0);
	n = strlen(argv[4]);
	fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "mmapwrite: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "mmapwrite: mmap: %s\n", strerror(errno));
		return 1;
	}
	for (i = 0; i < n; i++)
		p[off + i] = argv[4][i];
	if (argc == 6 && msync((void *)p, len, MS_SYNC) != 0) {
		fprintf(stderr, "mmapwrite: msync: %s\n", strerror(errno));
		return 3;
	}
	return 0;
}
