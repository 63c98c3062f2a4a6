// SPDX-License-Identifier: GPL-2.0
// pagestress WFSFILE EXPORTFILE PAGES SECONDS: races writes against
// whatever else happens to the pages (invalidations, writeback) and checks
// that no write is lost and no page is torn.
//
// It maps PAGES pages of WFSFILE shared and writable. Every page holds one
// 32-bit generation number in all of its 1024 words. Two threads own half
// of the pages each; for SECONDS they pick one of their pages at random,
// check that it holds the generation they last wrote (through the mapping,
// and every other time through pread(2) as well), and write the next
// generation into all of it; every 8th update they msync(MS_SYNC) that
// page. At the end everything is msync'ed and EXPORTFILE (the owner's
// copy, read directly) must hold the last generation of every page.
// Prints the number of updates and checks; exits 1 on the first mismatch.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS (PAGE / 4)

static volatile uint32_t *map;
static uint32_t *gen;
static size_t pages;
static int fd;
static time_t end;
static unsigned long updates[2], checks[2];

#define FAIL(...) do { fprintf(stderr, "pagestress: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

static void check_words(const volatile uint32_t *w, size_t p, uint32_t want, const char *via)
{
	for (size_t i = 0; i < WORDS; i++)
		if (w[i] != want)
			FAIL("page %zu word %zu is %u through %s, expected generation %u (%s)", p, i, w[i], via,
			     want, i ? "torn page" : "lost write");
}

static void *writer(void *arg)
{
	int t = (int)(intptr_t)arg;
	unsigned seed = 1234 + t;
	uint32_t buf[WORDS];

	while (time(NULL) < end) {
		size_t p = (size_t)(rand_r(&seed) % ((pages + 1 - t) / 2)) * 2 + t;
		volatile uint32_t *w = map + p * WORDS;

		if (p >= pages)
			continue;
		check_words(w, p, gen[p], "the mapping");
		if (updates[t] % 2 == 0) {
			if (pread(fd, buf, PAGE, (off_t)p * PAGE) != PAGE)
				FAIL("pread of page %zu: %s", p, strerror(errno));
			check_words(buf, p, gen[p], "pread");
		}
		checks[t]++;
		gen[p]++;
		for (size_t i = 0; i < WORDS; i++)
			w[i] = gen[p];
		if (++updates[t] % 8 == 0 && msync((void *)w, PAGE, MS_SYNC))
			FAIL("msync of page %zu: %s", p, strerror(errno));
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[2];
	uint32_t buf[WORDS];
	int efd;

	if (argc != 5) {
		fprintf(stderr, "usage: pagestress WFSFILE EXPORTFILE PAGES SECONDS\n");
		return 2;
	}
	pages = strtoull(argv[3], NULL, 0);
	fd = open(argv[1], O_RDWR);
	if (fd < 0)
		FAIL("%s: %s", argv[1], strerror(errno));
	map = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	gen = calloc(pages, sizeof(*gen));
	if (map == MAP_FAILED || !gen)
		FAIL("mmap: %s", strerror(errno));
	for (size_t p = 0; p < pages; p++) {
		gen[p] = 1;
		for (size_t i = 0; i < WORDS; i++)
			map[p * WORDS + i] = 1;
	}
	if (msync((void *)map, pages * PAGE, MS_SYNC))
		FAIL("msync: %s", strerror(errno));
	end = time(NULL) + atoi(argv[4]);
	for (int t = 0; t < 2; t++)
		if (pthread_create(&th[t], NULL, writer, (void *)(intptr_t)t))
			FAIL("pthread_create");
	for (int t = 0; t < 2; t++)
		pthread_join(th[t], NULL);
	if (msync((void *)map, pages * PAGE, MS_SYNC))
		FAIL("final msync: %s", strerror(errno));
	efd = open(argv[2], O_RDONLY);
	if (efd < 0)
		FAIL("%s: %s", argv[2], strerror(errno));
	for (size_t p = 0; p < pages; p++) {
		if (pread(efd, buf, PAGE, (off_t)p * PAGE) != PAGE)
			FAIL("pread of %s page %zu: %s", argv[2], p, strerror(errno));
		check_words(buf, p, gen[p], argv[2]);
	}
	printf("%lu updates, %lu checks, every page of %s at its last generation\n", updates[0] + updates[1],
	       checks[0] + checks[1], argv[2]);
	return 0;
}
