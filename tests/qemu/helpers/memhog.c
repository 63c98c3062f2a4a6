// SPDX-License-Identifier: GPL-2.0
// memhog LOWMIB SECONDS: keeps the kernel reclaiming for SECONDS.
//
// It grows its anonymous memory 1 MiB at a time (each chunk written, so
// it is really allocated) until /proc/meminfo's MemAvailable falls to
// LOWMIB, which it can only do by making the kernel reclaim page cache;
// then it frees a random quarter of its chunks and grows again, so that
// reclaim (kswapd and direct) runs in waves for the whole time instead of
// once. It sets its own oom_score_adj to 1000: if the kernel runs out of
// memory anyway (dirty pages it cannot write back from reclaim), the OOM
// killer takes the hog, not the program under test. SIGTERM or SIGINT end
// it early. Prints how much it held at most, how many waves it made, and
// how much it allocated in all.
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIB (1UL << 20)
#define MAXCHUNKS 4096

static volatile sig_atomic_t done;

static void on_signal(int sig)
{
	(void)sig;
	done = 1;
}

static long mem_available_mib(void)
{
	char buf[4096];
	int fd = open("/proc/meminfo", O_RDONLY);
	ssize_t n;
	char *p;

	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = 0;
	p = strstr(buf, "MemAvailable:");
	return p ? strtol(p + 13, NULL, 10) / 1024 : -1;
}

int main(int argc, char **argv)
{
	static char *chunk[MAXCHUNKS];
	unsigned long held = 0, peak = 0, waves = 0, allocated = 0;
	unsigned seed = getpid();
	long low;
	time_t end;
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: memhog LOWMIB SECONDS\n");
		return 2;
	}
	low = atol(argv[1]);
	end = time(NULL) + atol(argv[2]);
	fd = open("/proc/self/oom_score_adj", O_WRONLY);
	if (fd >= 0) {
		if (write(fd, "1000", 4) != 4)
			perror("memhog: oom_score_adj");
		close(fd);
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	while (!done && time(NULL) < end) {
		long avail = mem_available_mib();

		if (avail < 0) {
			fprintf(stderr, "memhog: no MemAvailable in /proc/meminfo\n");
			return 1;
		}
		if (avail > low && held < MAXCHUNKS) {
			char *c = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

			if (c == MAP_FAILED) {
				usleep(10000);
				continue;
			}
			for (unsigned long i = 0; i < MIB; i += 4096)
				c[i] = (char)(i + held);
			chunk[held++] = c;
			allocated++;
			if (held > peak)
				peak = held;
			continue;
		}
		// At the low mark: hold it a moment, then let go of a quarter
		// (random chunks, so the free memory is scattered: work for
		// compaction) and grow again.
		usleep(200000);
		waves++;
		for (unsigned long n = held / 4; n && held; n--) {
			unsigned long i = rand_r(&seed) % held;

			munmap(chunk[i], MIB);
			chunk[i] = chunk[--held];
		}
	}
	printf("memhog: held up to %lu MiB, %lu waves down to %ld MiB available, %lu MiB allocated in all\n",
	       peak, waves, low, allocated);
	return 0;
}
