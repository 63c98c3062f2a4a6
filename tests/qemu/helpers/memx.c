// SPDX-License-Identifier: GPL-2.0
// memx [-n] [-w] WFSFILE EXPORTFILE SHADOWOUT SECONDS [SEED]: a random
// file exerciser for memory pressure, page migration and compaction.
//
// WFSFILE (a /wfs file, of a whole number of pages) is mapped shared and
// writable. Its expected contents (the shadow) start as EXPORTFILE, the
// owner's copy read directly. For SECONDS the main thread mixes pread(2),
// pwrite(2), reads and writes through the mapping, msync(MS_SYNC) of
// random ranges, fsync(2) and madvise(MADV_PAGEOUT), at random offsets and
// lengths (crossing pages), updating the shadow on every write and
// comparing every read with it. A second thread moves mapped pages of the
// file between NUMA nodes 0 and 1 with move_pages(2) (the raw system
// call), each to the node it is not on, always including the page written
// last (likely dirty); it reads a byte of each page first, since reclaim
// unmaps pages faster than they are picked under heavy pressure and
// move_pages moves only mapped ones; -n leaves that thread out. -w makes the mix
// write-heavy and never syncs or pages out during the run, so that dirty
// pages pile up for reclaim to meet (the flusher writes them back). At the
// end everything is msync'ed and fsync'ed,
// EXPORTFILE must equal the shadow, and the shadow is written to SHADOWOUT
// (for the test to compare after a sync).
//
// Exits 1 on the first mismatch or error, and if move_pages cannot run at
// all (ENOSYS, or EINVAL/ENODEV: a kernel with one NUMA node). Prints what
// it did: operations of each kind, bytes verified, pages moved, and the
// errors move_pages reported per page.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#define MPOL_MF_MOVE (1 << 1)

#define PAGE 4096
#define BATCH 64
#define MAXLEN (4 * PAGE)

#define FAIL(...) do { fprintf(stderr, "memx: FAIL: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

static unsigned char *map, *shadow;
static size_t size, pages;
static int fd;
static atomic_int stop;
static atomic_size_t last_written = 0;

enum { PREAD, PWRITE, MREAD, MWRITE, MSYNC, FSYNC, PAGEOUT, NOPS };
static const char *op_name[NOPS] = { "pread", "pwrite", "mread", "mwrite", "msync", "fsync", "pageout" };
static unsigned op_weight[NOPS] = { 20, 20, 22, 25, 8, 1, 4 };
static const unsigned op_weight_dirty[NOPS] = { 15, 30, 15, 40, 0, 0, 0 };
static unsigned long op_count[NOPS];
static unsigned long long verified;

static uint64_t rng_state;
static uint64_t rnd(void)
{
	// xorshift64*
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void compare(const unsigned char *got, size_t off, size_t len, const char *via, unsigned long op)
{
	if (!memcmp(got, shadow + off, len)) {
		verified += len;
		return;
	}
	for (size_t i = 0; i < len; i++)
		if (got[i] != shadow[off + i])
			FAIL("op %lu: %s of [%zu, +%zu): byte %zu (page %zu, offset %zu in it) is 0x%02x, "
			     "expected 0x%02x", op, via, off, len, off + i, (off + i) / PAGE, (off + i) % PAGE,
			     got[i], shadow[off + i]);
}

// A random range: mostly small, sometimes several pages, sometimes a
// whole page; never past the end.
static void pick(size_t *off, size_t *len)
{
	unsigned k = rnd() % 8;

	if (k < 4)
		*len = 1 + rnd() % 256;
	else if (k < 6)
		*len = 1 + rnd() % MAXLEN;
	else
		*len = PAGE;
	*off = k == 7 ? (rnd() % pages) * PAGE : rnd() % size;
	if (*off + *len > size)
		*len = size - *off;
}

static void fill(unsigned char *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (unsigned char)(rnd() >> 56);
}

// move_pages(2) without libnuma.
static long move_pages(int count, void **addrs, const int *nodes, int *status)
{
	return syscall(SYS_move_pages, 0, (unsigned long)count, addrs, nodes, status, MPOL_MF_MOVE);
}

static unsigned long mv_calls, mv_moved, mv_tried, mv_errs[256], mv_call_errs[256], mv_other, mv_unmapped;

// Moves the pages at addrs[0..n) to node `to`, counting.
static void move_some(int n, void **addrs, int to)
{
	int nodes[BATCH], status[BATCH];
	long r;

	if (!n)
		return;
	// A status the kernel leaves as it was (a positive return: pages
	// not tried) counts as neither moved nor an error.
	for (int i = 0; i < n; i++) {
		nodes[i] = to;
		status[i] = INT_MIN;
	}
	mv_calls++;
	r = move_pages(n, addrs, nodes, status);
	if (r < 0) {
		if (errno == ENOSYS || errno == EINVAL || errno == ENODEV)
			FAIL("move_pages to nodes 0/1: %s: is there a node 1 (numa=fake=2)?",
			     strerror(errno));
		if (errno != ENOMEM && errno != EBUSY && errno != EAGAIN)
			FAIL("move_pages: %s", strerror(errno));
		mv_call_errs[errno]++;
		return;
	}
	mv_tried += n;
	for (int i = 0; i < n; i++) {
		if (status[i] == to)
			mv_moved++;
		else if (status[i] < 0 && -status[i] < 256)
			mv_errs[-status[i]]++;
		else
			mv_other++;
	}
}

static void *mover(void *arg)
{
	uint64_t seed = (uintptr_t)arg;
	void *addrs[BATCH];
	int status[BATCH];

	while (!atomic_load(&stop)) {
		for (int i = 0; i < BATCH; i++) {
			size_t p;

			seed ^= seed << 13;
			seed ^= seed >> 7;
			seed ^= seed << 17;
			p = i == 0 ? atomic_load(&last_written) : seed % pages;
			addrs[i] = map + p * PAGE;
			// Mapped again if reclaim took it (a CI run under heavy
			// pressure found none of the picked pages mapped and moved
			// nothing in 40 s).
			(void)*(volatile unsigned char *)addrs[i];
		}
		// Where is each page now? (Not mapped: -ENOENT or -EFAULT.)
		if (move_pages(BATCH, addrs, NULL, status) < 0) {
			if (errno == ENOSYS || errno == EINVAL || errno == ENODEV)
				FAIL("move_pages (query): %s: no NUMA migration in this kernel?", strerror(errno));
			FAIL("move_pages (query): %s", strerror(errno));
		}
		for (int i = 0; i < BATCH; i++)
			if (status[i] != 0 && status[i] != 1)
				mv_unmapped++;
		// Each to the other node, one call per direction: the kernel
		// fails a whole call with ENOMEM when a target node has no free
		// page, and a full node must not stop the moves to the other
		// (with a single call per batch, a CI run moved nothing).
		for (int to = 0; to < 2; to++) {
			void *go[BATCH];
			int n = 0;

			for (int i = 0; i < BATCH; i++)
				if (status[i] == 1 - to)
					go[n++] = addrs[i];
			move_some(n, go, to);
		}
		usleep(1000);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	struct stat st;
	pthread_t th;
	unsigned char *buf;
	unsigned long ops = 0, total_weight = 0;
	double t0, end;
	int efd, sfd, opt, move = 1;

	while ((opt = getopt(argc, argv, "nw")) != -1) {
		switch (opt) {
		case 'n':
			move = 0;
			break;
		case 'w':
			memcpy(op_weight, op_weight_dirty, sizeof(op_weight));
			break;
		default:
			return 2;
		}
	}
	argc -= optind - 1;
	argv += optind - 1;
	if (argc < 5 || argc > 6) {
		fprintf(stderr, "usage: memx [-n] [-w] WFSFILE EXPORTFILE SHADOWOUT SECONDS [SEED]\n");
		return 2;
	}
	rng_state = argc > 5 ? strtoull(argv[5], NULL, 0) : (uint64_t)time(NULL);
	if (!rng_state)
		rng_state = 1;
	printf("memx: seed %llu%s%s\n", (unsigned long long)rng_state, move ? "" : ", no move_pages",
	       op_weight[MSYNC] ? "" : ", write-heavy without syncs");
	fflush(stdout);
	fd = open(argv[1], O_RDWR);
	if (fd < 0 || fstat(fd, &st))
		FAIL("%s: %s", argv[1], strerror(errno));
	size = st.st_size;
	pages = size / PAGE;
	if (!pages || size % PAGE)
		FAIL("%s: size %zu is not a whole number of pages", argv[1], size);
	shadow = malloc(size);
	buf = malloc(MAXLEN);
	if (!shadow || !buf)
		FAIL("out of memory");
	efd = open(argv[2], O_RDONLY);
	if (efd < 0)
		FAIL("%s: %s", argv[2], strerror(errno));
	if (pread(efd, shadow, size, 0) != (ssize_t)size)
		FAIL("read %s: %s", argv[2], strerror(errno));
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		FAIL("mmap: %s", strerror(errno));
	// Every page faulted in (and checked) before the mover starts.
	compare(map, 0, size, "the first read through the mapping", 0);
	for (int i = 0; i < NOPS; i++)
		total_weight += op_weight[i];
	if (move && pthread_create(&th, NULL, mover, (void *)(uintptr_t)(rng_state | 1)))
		FAIL("pthread_create");

	t0 = now();
	end = t0 + atof(argv[4]);
	while (now() < end) {
		unsigned long w = rnd() % total_weight;
		size_t off, len;
		int op = 0;

		while (w >= op_weight[op])
			w -= op_weight[op++];
		pick(&off, &len);
		ops++;
		op_count[op]++;
		switch (op) {
		case PREAD: {
			ssize_t r = pread(fd, buf, len, off);

			if (r != (ssize_t)len)
				FAIL("op %lu: pread [%zu, +%zu): %zd (%s)", ops, off, len, r, strerror(errno));
			compare(buf, off, len, "pread", ops);
			break;
		}
		case PWRITE: {
			ssize_t r;

			fill(buf, len);
			r = pwrite(fd, buf, len, off);
			if (r != (ssize_t)len)
				FAIL("op %lu: pwrite [%zu, +%zu): %zd (%s)", ops, off, len, r, strerror(errno));
			memcpy(shadow + off, buf, len);
			atomic_store(&last_written, (off + len - 1) / PAGE);
			break;
		}
		case MREAD:
			compare(map + off, off, len, "a read through the mapping", ops);
			break;
		case MWRITE:
			fill(shadow + off, len);
			memcpy(map + off, shadow + off, len);
			atomic_store(&last_written, (off + len - 1) / PAGE);
			break;
		case MSYNC: {
			size_t a = off / PAGE * PAGE;

			if (msync(map + a, (off + len - a + PAGE - 1) / PAGE * PAGE, MS_SYNC))
				FAIL("op %lu: msync [%zu, +%zu): %s", ops, a, off + len - a, strerror(errno));
			break;
		}
		case FSYNC:
			if (fsync(fd))
				FAIL("op %lu: fsync: %s", ops, strerror(errno));
			break;
		case PAGEOUT: {
			size_t a = off / PAGE * PAGE;

			// Not every kernel has it; what matters is the next access.
			madvise(map + a, (off + len - a + PAGE - 1) / PAGE * PAGE, MADV_PAGEOUT);
			break;
		}
		}
		if (ops % 5000 == 0) {
			printf("memx: %.0f s: %lu operations, %lu pages moved\n", now() - t0, ops, mv_moved);
			fflush(stdout);
		}
	}
	atomic_store(&stop, 1);
	if (move)
		pthread_join(th, NULL);

	// The whole file once more, both ways, then home.
	compare(map, 0, size, "the last read through the mapping", ops);
	for (size_t off = 0; off < size; off += MAXLEN) {
		if (pread(fd, buf, MAXLEN, off) != MAXLEN)
			FAIL("final pread at %zu: %s", off, strerror(errno));
		compare(buf, off, MAXLEN, "the last pread", ops);
	}
	if (msync(map, size, MS_SYNC))
		FAIL("final msync: %s", strerror(errno));
	if (fsync(fd))
		FAIL("final fsync: %s", strerror(errno));
	for (size_t off = 0; off < size; off += MAXLEN) {
		if (pread(efd, buf, MAXLEN, off) != MAXLEN)
			FAIL("pread of %s at %zu: %s", argv[2], off, strerror(errno));
		compare(buf, off, MAXLEN, argv[2], ops);
	}
	sfd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (sfd < 0 || write(sfd, shadow, size) != (ssize_t)size || close(sfd))
		FAIL("%s: %s", argv[3], strerror(errno));

	printf("memx: %lu operations in %.1f s on %zu pages:", ops, now() - t0, pages);
	for (int i = 0; i < NOPS; i++)
		printf(" %s %lu", op_name[i], op_count[i]);
	printf("\nmemx: %llu bytes verified\n", verified);
	printf("memx: move_pages: %lu batches, %lu picked pages not mapped when asked, %lu pages tried, %lu moved",
	       mv_calls, mv_unmapped, mv_tried, mv_moved);
	for (int e = 0; e < 256; e++)
		if (mv_errs[e])
			printf(", %lu %s", mv_errs[e], strerrorname_np(e) ? strerrorname_np(e) : "?");
	if (mv_other)
		printf(", %lu other", mv_other);
	for (int e = 0; e < 256; e++)
		if (mv_call_errs[e])
			printf(", %lu batches failed whole with %s", mv_call_errs[e],
			       strerrorname_np(e) ? strerrorname_np(e) : "?");
	printf("\nmemx: %s equals the shadow copy (written to %s)\n", argv[2], argv[3]);
	printf("MEMX-RESULT ops=%lu moved=%lu verified=%llu\n", ops, mv_moved, verified);
	return 0;
}
