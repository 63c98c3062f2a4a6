// SPDX-License-Identifier: GPL-2.0
// mmaphold FILE LEN: keeps a shared read-write mapping of LEN bytes of FILE
// and runs commands from stdin, one per line, answering each with one line
// on stdout (flushed):
//   w OFFSET TEXT   write TEXT at OFFSET through the mapping -> "ok"
//   r OFFSET N      read N bytes at OFFSET -> them in hex ("4e4557")
//   s               msync(MS_SYNC) -> "ok" or "error: ..."
// It exits at end of input. A fault the kernel cannot satisfy kills it with
// SIGBUS.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char line[4096], text[4096];
	volatile char *p;
	size_t len, off, n, i;
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: mmaphold FILE LEN\n");
		return 2;
	}
	len = strtoull(argv[2], NULL, 0);
	fd = open(argv[1], O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "mmaphold: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "mmaphold: mmap: %s\n", strerror(errno));
		return 1;
	}
	while (fgets(line, sizeof(line), stdin)) {
		if (sscanf(line, "w %zu %4095s", &off, text) == 2 && off + strlen(text) <= len) {
			for (i = 0; text[i]; i++)
				p[off + i] = text[i];
			puts("ok");
		} else if (sscanf(line, "r %zu %zu", &off, &n) == 2 && off + n <= len) {
			for (i = 0; i < n; i++)
				printf("%02x", (unsigned char)p[off + i]);
			putchar('\n');
		} else if (line[0] == 's') {
			if (msync((void *)p, len, MS_SYNC) == 0)
				puts("ok");
			else
				printf("error: %s\n", strerror(errno));
		} else {
			printf("bad command: %s", line);
		}
		fflush(stdout);
	}
	return 0;
}
