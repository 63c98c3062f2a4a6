// SPDX-License-Identifier: GPL-2.0
// mmapcat FILE: maps FILE read-only (MAP_SHARED) and writes its bytes to
// stdout, so every page arrives through a page fault, not read(2).
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct stat st;
	const char *p;
	size_t off = 0;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: mmapcat FILE\n");
		return 2;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "mmapcat: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (st.st_size == 0)
		return 0;
	p = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "mmapcat: mmap %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = write(1, p + off, st.st_size - off);

		if (n <= 0) {
			fprintf(stderr, "mmapcat: write: %s\n", strerror(errno));
			return 1;
		}
		off += n;
	}
	return 0;
}
