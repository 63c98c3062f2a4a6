// SPDX-License-Identifier: GPL-2.0
// mview VIEW OFF OLD NEW CTL READY GO SECS: what a program reading a view
// (a `-o ro,view` mount) does, through one read-only MAP_SHARED mapping.
//
//  1. maps VIEW read-only and reads the u32 at OFF: it must be OLD;
//  2. sets the u32 at READY of CTL (a file of the coherent mount, mapped
//     shared) to 1 and msyncs it;
//  3. waits up to SECS seconds until the u32 at GO of CTL is 1 or more
//     (someone wrote NEW at OFF of the file and synced it);
//  4. reads the view's word again: still OLD (a view is not invalidated
//     by a write);
//  5. msync(MS_INVALIDATE) on the view's page, and reads again: NEW.
//
// Exits 1 (saying which step) if a value is not what it should be, 2 on
// a bad argument or a failed call; a fault the kernel cannot satisfy
// kills it with SIGBUS (status 135).
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void *map(const char *path, int flags, int prot, size_t *len)
{
	struct stat st;
	void *p;
	int fd = open(path, flags);

	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "mview: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	*len = st.st_size;
	p = mmap(NULL, *len, prot, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "mview: mmap %s: %s\n", path, strerror(errno));
		exit(2);
	}
	close(fd);
	return p;
}

static size_t offset(const char *s, size_t len)
{
	size_t o = strtoul(s, NULL, 0);

	if (o % 4 || o + 4 > len) {
		fprintf(stderr, "mview: offset %zu is not an aligned word of the file\n", o);
		exit(2);
	}
	return o;
}

int main(int argc, char **argv)
{
	size_t vlen, clen, off, ready, go, page;
	volatile const uint32_t *v;
	volatile uint32_t *c;
	unsigned char *view, *ctl;
	uint32_t old, new, got;
	struct timespec t0, t;
	double secs;

	if (argc != 9) {
		fprintf(stderr, "usage: mview VIEW OFF OLD NEW CTL READY GO SECS\n");
		return 2;
	}
	view = map(argv[1], O_RDONLY, PROT_READ, &vlen);
	ctl = map(argv[5], O_RDWR, PROT_READ | PROT_WRITE, &clen);
	off = offset(argv[2], vlen);
	old = strtoul(argv[3], NULL, 0);
	new = strtoul(argv[4], NULL, 0);
	ready = offset(argv[6], clen);
	go = offset(argv[7], clen);
	secs = atof(argv[8]);
	v = (volatile const uint32_t *)(view + off);
	page = off & ~(size_t)4095;

	got = *v;
	if (got != old) {
		fprintf(stderr, "mview: the view reads %u at %zu, not %u\n", got, off, old);
		return 1;
	}
	*(volatile uint32_t *)(ctl + ready) = 1;
	if (msync(ctl, clen, MS_SYNC) < 0) {
		fprintf(stderr, "mview: msync %s: %s\n", argv[5], strerror(errno));
		return 2;
	}
	c = (volatile uint32_t *)(ctl + go);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (*c < 1) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec - t0.tv_sec + (t.tv_nsec - t0.tv_nsec) / 1e9 > secs) {
			fprintf(stderr, "mview: word %zu of %s never set\n", go, argv[5]);
			return 1;
		}
		usleep(20000);
	}
	got = *v;
	if (got != old) {
		fprintf(stderr, "mview: the view changed to %u before it was refreshed\n", got);
		return 1;
	}
	if (msync(view + page, 4096, MS_INVALIDATE) < 0) {
		fprintf(stderr, "mview: msync(MS_INVALIDATE): %s\n", strerror(errno));
		return 2;
	}
	got = *v;
	if (got != new) {
		fprintf(stderr, "mview: after msync(MS_INVALIDATE) the view reads %u, not %u\n",
			got, new);
		return 1;
	}
	printf("mview: %u, still %u after the write, %u after msync(MS_INVALIDATE)\n",
	       old, old, new);
	return 0;
}
