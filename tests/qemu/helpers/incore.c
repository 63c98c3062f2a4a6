// SPDX-License-Identifier: GPL-2.0
// incore FILE: prints how many pages of FILE the page cache holds, read in
// and valid (mincore(2) over a shared mapping of the whole file, which
// faults nothing in). A page cached but not read in yet does not count.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long page = sysconf(_SC_PAGESIZE);
	unsigned char *vec;
	struct stat st;
	size_t pages, i, n = 0;
	void *p;
	int fd;

	if (argc != 2) {
		fprintf(stderr, "usage: incore FILE\n");
		return 2;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "incore: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	if (st.st_size == 0) {
		puts("0");
		return 0;
	}
	pages = ((size_t)st.st_size + page - 1) / page;
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	vec = malloc(pages);
	if (p == MAP_FAILED || !vec) {
		fprintf(stderr, "incore: mmap: %s\n", strerror(errno));
		return 1;
	}
	if (mincore(p, (size_t)st.st_size, vec) < 0) {
		fprintf(stderr, "incore: mincore: %s\n", strerror(errno));
		return 1;
	}
	for (i = 0; i < pages; i++)
		n += vec[i] & 1;
	printf("%zu\n", n);
	return 0;
}
