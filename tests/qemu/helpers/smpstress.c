// SPDX-License-Identifier: GPL-2.0
// smpstress WFSFILE EXPORTFILE PAGES SECONDS: two CPUs race on the same
// pages.
//
// Two threads, thread t pinned to CPU t, share every one of PAGES pages
// of a shared writable mapping of WFSFILE: thread t owns half t of each
// page (words 0..511 or 512..1023), which holds one 32-bit generation
// number. For SECONDS each thread picks a page at random (both threads
// pick from all pages, so they fault, write and write back the same pages
// at the same time), checks that its half holds the generation it last
// wrote (through the mapping, and every other time through pread(2) as
// well), and writes the next generation into its half: through the
// mapping, or every 4th time with one pwrite(2). Every 8th update it
// msync(MS_SYNC)s the page, every 64th it fsync(2)s the file. Both threads
// start together (a barrier) and check with sched_getcpu() that they run
// where they were pinned. At the end everything is msync'ed and EXPORTFILE
// (the owner's copy, read directly) must hold every half's last
// generation. Needs 2 online CPUs. Exits 1 on the first mismatch.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS (PAGE / 4)
#define HALF (WORDS / 2)

static volatile uint32_t *map;
static uint32_t *gen[2];
static size_t pages;
static int fd;
static time_t end;
static pthread_barrier_t start;
static unsigned long updates[2], checks[2], pwrites[2], msyncs[2], fsyncs[2], wrong_cpu[2];

#define FAIL(...) do { fprintf(stderr, "smpstress: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

static void check_half(const volatile uint32_t *w, size_t p, int t, uint32_t want, const char *via)
{
	for (size_t i = 0; i < HALF; i++)
		if (w[t * HALF + i] != want)
			FAIL("page %zu half %d word %zu is %u through %s, expected generation %u (%s)", p, t, i,
			     w[t * HALF + i], via, want, i ? "torn write" : "lost write");
}

static void *writer(void *arg)
{
	int t = (int)(intptr_t)arg;
	unsigned seed = 4321 + t;
	uint32_t buf[WORDS];
	cpu_set_t set;

	CPU_ZERO(&set);
	CPU_SET(t, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		FAIL("thread %d: sched_setaffinity to CPU %d: %s", t, t, strerror(errno));
	pthread_barrier_wait(&start);
	while (time(NULL) < end) {
		size_t p = rand_r(&seed) % pages;
		volatile uint32_t *w = map + p * WORDS;

		if (sched_getcpu() != t)
			wrong_cpu[t]++;
		check_half(w, p, t, gen[t][p], "the mapping");
		if (updates[t] % 2 == 0) {
			if (pread(fd, buf, PAGE, (off_t)p * PAGE) != PAGE)
				FAIL("pread of page %zu: %s", p, strerror(errno));
			check_half(buf, p, t, gen[t][p], "pread");
		}
		checks[t]++;
		gen[t][p]++;
		if (updates[t] % 4 == 3) {
			for (size_t i = 0; i < HALF; i++)
				buf[i] = gen[t][p];
			if (pwrite(fd, buf, PAGE / 2, (off_t)p * PAGE + t * PAGE / 2) != PAGE / 2)
				FAIL("pwrite of page %zu half %d: %s", p, t, strerror(errno));
			pwrites[t]++;
		} else {
			for (size_t i = 0; i < HALF; i++)
				w[t * HALF + i] = gen[t][p];
		}
		if (++updates[t] % 8 == 0) {
			if (msync((void *)w, PAGE, MS_SYNC))
				FAIL("msync of page %zu: %s", p, strerror(errno));
			msyncs[t]++;
		}
		if (updates[t] % 64 == 0) {
			if (fsync(fd))
				FAIL("fsync: %s", strerror(errno));
			fsyncs[t]++;
		}
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t th[2];
	uint32_t buf[WORDS];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int efd;

	if (argc != 5) {
		fprintf(stderr, "usage: smpstress WFSFILE EXPORTFILE PAGES SECONDS\n");
		return 2;
	}
	if (cpus < 2)
		FAIL("%ld CPU(s) online: the race needs 2", cpus);
	pages = strtoull(argv[3], NULL, 0);
	fd = open(argv[1], O_RDWR);
	if (fd < 0)
		FAIL("%s: %s", argv[1], strerror(errno));
	map = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	gen[0] = calloc(pages, sizeof(uint32_t));
	gen[1] = calloc(pages, sizeof(uint32_t));
	if (map == MAP_FAILED || !gen[0] || !gen[1])
		FAIL("mmap: %s", strerror(errno));
	for (size_t p = 0; p < pages; p++) {
		gen[0][p] = 1;
		gen[1][p] = 1;
		for (size_t i = 0; i < WORDS; i++)
			map[p * WORDS + i] = 1;
	}
	if (msync((void *)map, pages * PAGE, MS_SYNC))
		FAIL("msync: %s", strerror(errno));
	end = time(NULL) + atoi(argv[4]);
	pthread_barrier_init(&start, NULL, 2);
	for (int t = 0; t < 2; t++)
		if (pthread_create(&th[t], NULL, writer, (void *)(intptr_t)t))
			FAIL("pthread_create");
	for (int t = 0; t < 2; t++)
		pthread_join(th[t], NULL);
	if (msync((void *)map, pages * PAGE, MS_SYNC))
		FAIL("final msync: %s", strerror(errno));
	for (size_t p = 0; p < pages; p++)
		for (int t = 0; t < 2; t++)
			check_half(map + p * WORDS, p, t, gen[t][p], "the mapping at the end");
	efd = open(argv[2], O_RDONLY);
	if (efd < 0)
		FAIL("%s: %s", argv[2], strerror(errno));
	for (size_t p = 0; p < pages; p++) {
		if (pread(efd, buf, PAGE, (off_t)p * PAGE) != PAGE)
			FAIL("pread of %s page %zu: %s", argv[2], p, strerror(errno));
		for (int t = 0; t < 2; t++)
			check_half(buf, p, t, gen[t][p], argv[2]);
	}
	for (int t = 0; t < 2; t++) {
		printf("smpstress: CPU %d: %lu updates (%lu by pwrite), %lu checks, %lu msyncs, %lu fsyncs\n", t,
		       updates[t], pwrites[t], checks[t], msyncs[t], fsyncs[t]);
		if (wrong_cpu[t])
			FAIL("thread %d ran %lu times off CPU %d despite its affinity", t, wrong_cpu[t], t);
	}
	printf("smpstress: every half page of %s at its last generation\n", argv[2]);
	return 0;
}
