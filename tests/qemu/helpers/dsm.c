// SPDX-License-Identifier: GPL-2.0
// dsm: what a Chunk application does with a file shared between hosts,
// all through one MAP_SHARED mapping of the whole file.
//
//   dsm wait FILE OFF VALUE SECS   poll the u32 at OFF until it is at
//                                  least VALUE (exit 1 after SECS seconds)
//   dsm set FILE OFF VALUE         store VALUE in the u32 at OFF, msync
//   dsm get FILE OFF               print the u32 at OFF
//   dsm count FILE OFF N [US]      N times: take the spin lock at OFF (an
//                                  atomic exchange on the u32 there), add
//                                  one to the u32 at OFF+4, release, and
//                                  pause US microseconds (default 0); then
//                                  msync and print the counter
//   dsm tally FILE N H SYNC US [K PID]
//                                  N times: take the spin lock at 0, add one
//                                  to the counter at 4 and to host H's own
//                                  count at 8+4*H, release, pause US
//                                  microseconds; msync after every SYNC
//                                  increments (after the release, so the
//                                  disk never holds the lock taken); right
//                                  after increment K, stop process PID (the
//                                  manager) at once, then SIGKILL it, and go
//                                  on (the next fault fails); then msync and
//                                  print the counter
//   dsm journal FILE CTL OFF US    for i = 1, 2, ... (one u32 each, up to
//                                  the end of FILE): store i at word i of
//                                  FILE and msync its page, then store i at
//                                  OFF in CTL and msync that; pause US
//                                  microseconds; so whatever CTL says, every
//                                  record up to it was synced before
//   dsm journaled FILE N           exit 1 unless words 1..N of FILE hold
//                                  1..N
//   dsm fill FILE SEED             write every byte i as (i*7+SEED)&255,
//                                  msync
//   dsm check FILE SEED            exit 1 unless every byte is as fill wrote
//
// A fault the kernel cannot satisfy kills it with SIGBUS (status 135).
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static unsigned char *map(const char *path, size_t *len)
{
	struct stat st;
	void *p;
	int fd = open(path, O_RDWR);

	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "dsm: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	*len = st.st_size;
	p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		fprintf(stderr, "dsm: mmap %s: %s\n", path, strerror(errno));
		exit(2);
	}
	close(fd);
	return p;
}

static void sync_or_die(unsigned char *p, size_t len)
{
	if (msync(p, len, MS_SYNC) < 0) {
		fprintf(stderr, "dsm: msync: %s\n", strerror(errno));
		exit(3);
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static volatile uint32_t *word(unsigned char *p, size_t len, const char *off)
{
	size_t o = strtoul(off, NULL, 0);

	if (o % 4 || o + 8 > len) {
		fprintf(stderr, "dsm: offset %zu is not an aligned word of the file\n", o);
		exit(2);
	}
	return (volatile uint32_t *)(p + o);
}

int main(int argc, char **argv)
{
	unsigned char *p;
	size_t len, i;

	if (argc < 4) {
		fprintf(stderr, "usage: dsm wait|set|get|count|tally|journal|journaled|fill|check FILE ...\n");
		return 2;
	}
	p = map(argv[2], &len);
	if (!strcmp(argv[1], "wait") && argc == 6) {
		volatile uint32_t *w = word(p, len, argv[3]);
		uint32_t want = strtoul(argv[4], NULL, 0);
		double end = now() + atof(argv[5]);

		while (*w < want) {
			if (now() > end) {
				fprintf(stderr, "dsm: word %s is %u, not %u or more, after %s s\n",
					argv[3], *w, want, argv[5]);
				return 1;
			}
			usleep(20000);
		}
		return 0;
	}
	if (!strcmp(argv[1], "set") && argc == 5) {
		*word(p, len, argv[3]) = strtoul(argv[4], NULL, 0);
		sync_or_die(p, len);
		return 0;
	}
	if (!strcmp(argv[1], "get") && argc == 4) {
		printf("%u\n", *word(p, len, argv[3]));
		return 0;
	}
	if (!strcmp(argv[1], "count") && (argc == 5 || argc == 6)) {
		volatile uint32_t *lock = word(p, len, argv[3]);
		volatile uint32_t *counter = lock + 1;
		long n = atol(argv[4]);
		long pause = argc == 6 ? atol(argv[5]) : 0;

		for (long k = 0; k < n; k++) {
			while (__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE))
				;
			*counter = *counter + 1;
			__atomic_store_n(lock, 0, __ATOMIC_RELEASE);
			if (pause)
				usleep(pause);
		}
		sync_or_die(p, len);
		printf("%u\n", *counter);
		return 0;
	}
	if (!strcmp(argv[1], "tally") && (argc == 7 || argc == 9)) {
		volatile uint32_t *lock = word(p, len, "0");
		volatile uint32_t *counter = lock + 1;
		long n = atol(argv[3]);
		long h = atol(argv[4]);
		long every = atol(argv[5]);
		long pause = atol(argv[6]);
		long kill_at = argc == 9 ? atol(argv[7]) : 0;
		pid_t victim = argc == 9 ? atol(argv[8]) : 0;
		volatile uint32_t *mine = word(p, len, "8") + h;

		if (h < 0 || 8 + 4 * (size_t)h + 4 > len) {
			fprintf(stderr, "dsm: host %ld has no count in the file\n", h);
			return 2;
		}
		for (long k = 1; k <= n; k++) {
			while (__atomic_exchange_n(lock, 1, __ATOMIC_ACQUIRE))
				;
			*counter = *counter + 1;
			*mine = *mine + 1;
			__atomic_store_n(lock, 0, __ATOMIC_RELEASE);
			if (k == kill_at) {
				// Stopped before it can hand the page over: it dies
				// holding it, dirty.
				if (kill(victim, SIGSTOP) || kill(victim, SIGKILL))
					fprintf(stderr, "dsm: kill %d: %s\n", victim, strerror(errno));
				fprintf(stderr, "dsm: killed the manager after %ld increments\n", k);
			}
			if (every && k % every == 0)
				sync_or_die(p, len);
			if (pause)
				usleep(pause);
		}
		sync_or_die(p, len);
		printf("%u\n", *counter);
		return 0;
	}
	if (!strcmp(argv[1], "journal") && argc == 6) {
		size_t clen;
		unsigned char *c = map(argv[3], &clen);
		volatile uint32_t *mark = word(c, clen, argv[4]);
		volatile uint32_t *rec = (volatile uint32_t *)p;
		long pause = atol(argv[5]);

		for (uint32_t k = 1; (size_t)k * 4 + 4 <= len; k++) {
			rec[k] = k;
			if (msync(p + ((size_t)k * 4 & ~(size_t)4095), 4096, MS_SYNC) < 0) {
				fprintf(stderr, "dsm: msync of record %u: %s\n", k, strerror(errno));
				return 3;
			}
			*mark = k;
			sync_or_die(c, clen);
			if (pause)
				usleep(pause);
		}
		return 0;
	}
	if (!strcmp(argv[1], "journaled") && argc == 4) {
		uint32_t n = strtoul(argv[3], NULL, 0);
		volatile uint32_t *rec = (volatile uint32_t *)p;

		if ((size_t)n * 4 + 4 > len) {
			fprintf(stderr, "dsm: %u records do not fit\n", n);
			return 2;
		}
		for (uint32_t k = 1; k <= n; k++) {
			if (rec[k] != k) {
				fprintf(stderr, "dsm: record %u holds %u\n", k, rec[k]);
				return 1;
			}
		}
		return 0;
	}
	if (!strcmp(argv[1], "fill") && argc == 4) {
		unsigned seed = strtoul(argv[3], NULL, 0);

		for (i = 0; i < len; i++)
			p[i] = (i * 7 + seed) & 255;
		sync_or_die(p, len);
		return 0;
	}
	if (!strcmp(argv[1], "check") && argc == 4) {
		unsigned seed = strtoul(argv[3], NULL, 0);

		for (i = 0; i < len; i++) {
			if (p[i] != ((i * 7 + seed) & 255)) {
				fprintf(stderr, "dsm: byte %zu is %u, not %zu\n", i, p[i],
					(i * 7 + seed) & 255);
				return 1;
			}
		}
		return 0;
	}
	fprintf(stderr, "dsm: bad arguments\n");
	return 2;
}
