// SPDX-License-Identifier: GPL-2.0
// mtfault make FILE PAGES: writes a file whose page p holds p (as a 64-bit
// number) followed by the byte (p * 31 + 7) & 0xff.
// mtfault check FILE THREADS: maps FILE shared and read-only and starts
// THREADS threads at once: the first half fault disjoint ranges of pages,
// the second half every page, each in its own random order. Every byte of
// every page is checked. Exits 1 on any wrong byte.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096

static const uint8_t *map;
static size_t pages;
static int threads;
static pthread_barrier_t start;
static volatile int bad;

static uint8_t fill(size_t p) { return (p * 31 + 7) & 0xff; }

static void check_page(size_t p)
{
	const uint8_t *q = map + p * PAGE;
	uint64_t idx;

	memcpy(&idx, q, 8);
	if (idx != p) {
		fprintf(stderr, "mtfault: page %zu starts with %llu\n", p, (unsigned long long)idx);
		bad = 1;
		return;
	}
	for (size_t i = 8; i < PAGE; i++) {
		if (q[i] != fill(p)) {
			fprintf(stderr, "mtfault: page %zu byte %zu is %u, not %u\n", p, i, q[i], fill(p));
			bad = 1;
			return;
		}
	}
}

static void *worker(void *arg)
{
	long t = (long)arg;
	unsigned int seed = t * 7919 + 1;
	size_t *order = malloc(pages * sizeof(*order));
	size_t n = 0;

	if (t < threads / 2) {
		size_t per = pages / (threads / 2);

		for (size_t p = t * per; p < (size_t)(t + 1) * per; p++)
			order[n++] = p;
	} else {
		for (size_t p = 0; p < pages; p++)
			order[n++] = p;
	}
	for (size_t i = n; i > 1; i--) {
		size_t j = rand_r(&seed) % i, tmp = order[i - 1];

		order[i - 1] = order[j];
		order[j] = tmp;
	}
	pthread_barrier_wait(&start);
	for (size_t i = 0; i < n; i++)
		check_page(order[i]);
	free(order);
	return NULL;
}

int main(int argc, char **argv)
{
	struct stat st;
	pthread_t tid[64];
	int fd;

	if (argc == 4 && !strcmp(argv[1], "make")) {
		uint8_t page[PAGE];
		FILE *f = fopen(argv[2], "w");

		pages = strtoul(argv[3], NULL, 0);
		for (size_t p = 0; f && p < pages; p++) {
			uint64_t idx = p;

			memset(page, fill(p), PAGE);
			memcpy(page, &idx, 8);
			fwrite(page, PAGE, 1, f);
		}
		return !f || fclose(f);
	}
	if (argc != 4 || strcmp(argv[1], "check")) {
		fprintf(stderr, "usage: mtfault make FILE PAGES | mtfault check FILE THREADS\n");
		return 2;
	}
	threads = atoi(argv[3]);
	if (threads < 2 || threads > 64 || threads % 2) {
		fprintf(stderr, "mtfault: THREADS must be even, 2..64\n");
		return 2;
	}
	fd = open(argv[2], O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "mtfault: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	pages = st.st_size / PAGE;
	map = mmap(NULL, st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		fprintf(stderr, "mtfault: mmap: %s\n", strerror(errno));
		return 1;
	}
	pthread_barrier_init(&start, NULL, threads);
	for (long t = 0; t < threads; t++)
		pthread_create(&tid[t], NULL, worker, (void *)t);
	for (int t = 0; t < threads; t++)
		pthread_join(tid[t], NULL);
	printf("mtfault: %d threads checked %zu pages: %s\n", threads, pages, bad ? "WRONG DATA" : "ok");
	return bad;
}
