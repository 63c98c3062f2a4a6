// SPDX-License-Identifier: GPL-2.0
// mmapget FILE LEN OFFSET: maps LEN bytes of FILE read-only (MAP_SHARED)
// and prints the byte at OFFSET in decimal. A fault the kernel cannot
// satisfy kills it with SIGBUS, which the shell reports as status 135.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	volatile const unsigned char *p;
	size_t len, off;
	int fd;

	if (argc != 4) {
		fprintf(stderr, "usage: mmapget FILE LEN OFFSET\n");
		return 2;
	}
	len = strtoull(argv[2], NULL, 0);
	off = strtoull(argv[3], NULL, 0);
	fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "mmapget: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "mmapget: mmap: %s\n", strerror(errno));
		return 1;
	}
	printf("%u\n", p[off]);
	return 0;
}
