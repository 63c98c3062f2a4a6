// SPDX-License-Identifier: GPL-2.0
// fsx: a seeded random file exerciser, checked against a model kept in
// memory after every operation (in the spirit of xfstests' fsx; written
// here for WFS).
//
//   fsx FILE SEED OPS [MAXSIZE]
//
// FILE must exist; its contents become the model's start. Each of OPS
// operations is drawn from SEED: pwrite (anywhere up to a little past
// the end: the file grows), pread, a read and a write through a shared
// mapping (within the file; a read also checks that the rest of the last
// page reads as zeros), ftruncate up and down (what a shrink cut reads
// as zeros when the file grows again), fsync, msync, and closing and
// opening the file again. After each, the size fstat(2) and lseek(2) give
// must be the model's, and what was read must be the model's bytes.
// MAXSIZE (default 256 KiB) bounds the file.
//
// On success prints "ok SIZE CKSUM" (CKSUM: a 32-bit FNV-1a of the model's
// bytes, to compare with the file elsewhere); on the first difference it
// prints the operation, what differs and the last 16 operations, and
// exits 1. `fsx --sum FILE` prints "SIZE CKSUM" of a file.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096
#define LOG 16

static const char *path;
static int fd = -1;
static unsigned char *model, *buf;
static size_t size, maxsize;
static uint64_t rng;
static char ops[LOG][96];
static long opn;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static size_t below(size_t n)
{
	return n ? rnd() % n : 0;
}

static uint32_t fnv(const unsigned char *p, size_t n)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static void note(const char *fmt, size_t a, size_t b)
{
	snprintf(ops[opn % LOG], sizeof(ops[0]), "%ld: ", opn);
	snprintf(ops[opn % LOG] + strlen(ops[opn % LOG]), sizeof(ops[0]) - strlen(ops[opn % LOG]),
		 fmt, a, b);
}

static void die(const char *fmt, size_t a, size_t b)
{
	printf("fsx: op %s: ", ops[opn % LOG]);
	printf(fmt, a, b);
	printf(" (errno %s)\nlast operations:\n", strerror(errno));
	for (long i = opn - LOG + 1; i <= opn; i++)
		if (i >= 0)
			printf("  %s\n", ops[i % LOG]);
	exit(1);
}

static void reopen(void)
{
	if (fd >= 0 && close(fd) < 0)
		die("close", 0, 0);
	fd = open(path, O_RDWR);
	if (fd < 0)
		die("open", 0, 0);
}

// The bytes at `off` read back must be the model's.
static void compare(const unsigned char *got, size_t off, size_t len, const char *how)
{
	for (size_t i = 0; i < len; i++)
		if (got[i] != model[off + i]) {
			printf("fsx: %s at %zu: 0x%02x, not 0x%02x\n", how, off + i, got[i],
			       model[off + i]);
			die("%zu bytes from %zu differ", len, off);
		}
}

static void check_size(void)
{
	struct stat st;
	off_t end;

	if (fstat(fd, &st) < 0)
		die("fstat", 0, 0);
	if ((size_t)st.st_size != size)
		die("fstat says %zu bytes, the model %zu", st.st_size, size);
	end = lseek(fd, 0, SEEK_END);
	if (end < 0 || (size_t)end != size)
		die("lseek says %zu bytes, the model %zu", (size_t)end, size);
}

static void grow_model(size_t to)
{
	if (to > size)
		memset(model + size, 0, to - size);
	size = to > size ? to : size;
}

int main(int argc, char **argv)
{
	long nops;
	struct stat st;

	if (argc == 3 && !strcmp(argv[1], "--sum")) {
		FILE *f = fopen(argv[2], "r");
		size_t n;

		buf = malloc(1 << 24);
		if (!f || !buf)
			return 2;
		n = fread(buf, 1, 1 << 24, f);
		printf("%zu %08x\n", n, fnv(buf, n));
		return 0;
	}
	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: fsx FILE SEED OPS [MAXSIZE] | fsx --sum FILE\n");
		return 2;
	}
	path = argv[1];
	rng = strtoull(argv[2], NULL, 0) * 2654435761u + 1;
	nops = atol(argv[3]);
	maxsize = argc == 5 ? strtoul(argv[4], NULL, 0) : 256 << 10;
	model = calloc(1, maxsize + PAGE);
	buf = malloc(maxsize + PAGE);
	if (!model || !buf)
		return 2;
	reopen();
	if (fstat(fd, &st) < 0 || (size_t)st.st_size > maxsize)
		die("the file is %zu bytes, more than %zu", st.st_size, maxsize);
	size = st.st_size;
	if (pread(fd, model, size, 0) != (ssize_t)size)
		die("reading the start", 0, 0);

	for (opn = 0; opn < nops; opn++) {
		size_t off, len;
		unsigned char *map;
		ssize_t n;

		switch (below(16)) {
		case 0: case 1: case 2: case 3: /* pwrite, maybe past the end */
			off = below(size + 3 * PAGE);
			len = 1 + below(3 * PAGE);
			if (off + len > maxsize)
				break;
			note("pwrite %zu +%zu", off, len);
			for (size_t i = 0; i < len; i++)
				buf[i] = rnd();
			n = pwrite(fd, buf, len, off);
			if (n != (ssize_t)len)
				die("pwrite wrote %zu of %zu", n, len);
			grow_model(off + len);
			memcpy(model + off, buf, len);
			break;
		case 4: case 5: case 6: /* pread */
			off = below(size + PAGE);
			len = 1 + below(3 * PAGE);
			note("pread %zu +%zu", off, len);
			n = pread(fd, buf, len, off);
			if (n < 0)
				die("pread", 0, 0);
			if ((size_t)n != (off >= size ? 0 : (off + len > size ? size - off : len)))
				die("pread read %zu bytes at %zu", n, off);
			compare(buf, off, n, "pread");
			break;
		case 7: case 8: /* a read through a mapping */
		case 9: case 10: /* a write through a mapping */
			if (size == 0)
				break;
			off = below(size);
			len = 1 + below(size - off < 2 * PAGE ? size - off : 2 * PAGE);
			{
				size_t maplen = (size + PAGE - 1) / PAGE * PAGE;
				int write = rnd() & 1 ? 0 : 1;

				write = write && !(opn & 1); // (about as many reads)
				note(write ? "mapwrite %zu +%zu" : "mapread %zu +%zu", off, len);
				map = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
				if (map == MAP_FAILED)
					die("mmap of %zu bytes", maplen, 0);
				if (write) {
					for (size_t i = 0; i < len; i++)
						model[off + i] = rnd();
					memcpy(map + off, model + off, len);
					if ((rnd() & 3) == 0 && msync(map, maplen, MS_SYNC) < 0)
						die("msync", 0, 0);
				} else {
					compare(map + off, off, len, "mapped read");
					// The rest of the last page is no part of the
					// file: zeros.
					for (size_t i = size; i < maplen; i++)
						if (map[i])
							die("byte %zu past the end (%zu) reads nonzero", i, size);
				}
				munmap(map, maplen);
			}
			break;
		case 11: /* ftruncate up or down */
			off = below(maxsize);
			note("ftruncate %zu (from %zu)", off, size);
			if (ftruncate(fd, off) < 0)
				die("ftruncate", 0, 0);
			if (off < size) {
				memset(model + off, 0, size - off);
				size = off;
			}
			grow_model(off);
			break;
		case 12: /* fsync */
			note("fsync", 0, 0);
			if (fsync(fd) < 0)
				die("fsync", 0, 0);
			break;
		case 13: /* close and open again */
			note("reopen", 0, 0);
			reopen();
			break;
		default: /* the whole file, read back */
			note("read all %zu", size, 0);
			n = pread(fd, buf, size + 1, 0);
			if (n != (ssize_t)size)
				die("read %zu bytes of %zu", n, size);
			compare(buf, 0, size, "whole read");
		}
		check_size();
	}
	if (fsync(fd) < 0)
		die("last fsync", 0, 0);
	printf("ok %zu %08x\n", size, fnv(model, size));
	return 0;
}
