// SPDX-License-Identifier: GPL-2.0
// wfsbench: the measurements of `make bench`, run inside a guest. Each
// mode prints one line "LABEL n=N mean_ns=M sd_ns=S min_ns=A median_ns=B
// runs=R run_sd_ns=D q10_ns=... q999_ns=..." over its samples (one sample
// per operation); runs and run_sd_ns say how many runs (rounds) there
// were and how much the runs' means spread (their standard deviation),
// and qK_ns the K per mille quantile (1% to 99.9%: the distribution):
//
//   wfsbench fault LABEL FILE PAGES ROUNDS [drop]
//       first touch of every page of FILE, in random order, each page
//       mapped alone (shared, read-only, MADV_RANDOM), so that neither
//       read-around nor fault-around can serve it early: one fault, and
//       one page fetched, per sample.
//       With "drop", the page cache is dropped before each round, so every
//       fault misses it; without, the file's pages stay cached (a minor
//       fault, the paper's local null page fault).
//   wfsbench uffd LABEL PAGES ROUNDS
//       first touches of anonymous memory registered with userfaultfd, in
//       random order; a handler thread resolves each fault with
//       UFFDIO_COPY.
//   wfsbench fault1 LABEL PAGES FILE...
//       first touch of every page of each FILE (one run per file), each
//       page mapped alone as for "fault", the page cache left as it is:
//       for pages that live on another host, every touch is a remote
//       fault.
//   wfsbench tcp LABEL ROUNDS [HOST PORT]
//       a 16-byte request and a 4096-byte answer over TCP: to a server
//       process forked on loopback, or to "wfsbench tcp-serve PORT" on
//       HOST: the cost of asking a server for a page.
//   wfsbench tcp-serve PORT
//       answers each 16-byte request with 4096 bytes, for one connection.
//   wfsbench seq LABEL FILE...
//       reads each FILE from start to end with read(2), 1 MiB at a time
//       (the kernel's read-ahead as it is): one sample per file, in ns
//       per MiB (MiB/s = 1e9 / mean).
//   wfsbench tcp-bw LABEL ROUNDS MIB HOST PORT
//       sends MIB MiB over one TCP connection to "wfsbench tcp-sink PORT"
//       on HOST and waits for its 1-byte receipt, ROUNDS times: one sample
//       per round, in ns per MiB (the bandwidth between the two hosts).
//   wfsbench tcp-sink PORT
//       for one connection: reads an 8-byte length, that many bytes, and
//       answers one byte, until the length is 0.
//   wfsbench share LABEL FILE PERCENT HOST TRAVERSALS
//       the sharing benchmark of the Chunk paper (Figure 4): FILE has 16
//       pages; each of two hosts (HOST 0 or 1) works on 8 of them, of
//       which PERCENT% (rounded to whole pages) are the same for both and
//       the rest its own. A traversal visits 800 pages (its 8 in turn)
//       and at each visit modifies the first byte of the page 1000 times;
//       it does TRAVERSALS of them (so that the two hosts' runs overlap
//       even though they cannot start at the same instant).
//       Prints "LABEL total_ns=T per_traversal_ns=T/TRAVERSALS shared=K".
//   wfsbench rshare LABEL FILE PERCENT HOST TRAVERSALS
//       the same with reads: at each visit it reads the first byte of the
//       page 1000 times, and host 0 writes it once every 100th visit (1%
//       of its visits write): read-mostly sharing.
//   wfsbench copy LABEL ROUNDS
//       memcpy of one 4 KB page.
//   wfsbench remap LABEL ROUNDS
//       moving one page of a mapping to another address (mremap): the
//       page-table update and TLB flush that handing over a page instead of
//       copying it costs at least.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096

static double *samples;
static size_t nsamples, cap;
/* Where each run (round) starts in samples[]. */
static size_t run_start[1024];
static int nruns;

static void new_run(void)
{
	if (nruns < 1024)
		run_start[nruns++] = nsamples;
}

#define DIE(...) do { fprintf(stderr, "wfsbench: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + t.tv_nsec;
}

static void add(double ns)
{
	if (nsamples == cap) {
		cap = cap ? 2 * cap : 1024;
		samples = realloc(samples, cap * sizeof(*samples));
		if (!samples)
			DIE("out of memory");
	}
	samples[nsamples++] = ns;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void report(const char *label)
{
	double sum = 0, sq = 0, mean;
	size_t i;

	double rsum = 0, rsq = 0, means[1024];

	if (nsamples < 2)
		DIE("%s: only %zu samples", label, nsamples);
	if (nruns == 0)
		new_run(); /* one run: the whole sample */
	for (int r = 0; r < nruns; r++) {
		size_t from = run_start[r], to = r + 1 < nruns ? run_start[r + 1] : nsamples;
		double s = 0;

		for (i = from; i < to; i++)
			s += samples[i];
		means[r] = to > from ? s / (to - from) : 0;
		rsum += means[r];
	}
	for (int r = 0; r < nruns; r++)
		rsq += (means[r] - rsum / nruns) * (means[r] - rsum / nruns);
	for (i = 0; i < nsamples; i++)
		sum += samples[i];
	mean = sum / nsamples;
	for (i = 0; i < nsamples; i++)
		sq += (samples[i] - mean) * (samples[i] - mean);
	qsort(samples, nsamples, sizeof(*samples), cmp);
	printf("%s n=%zu mean_ns=%.0f sd_ns=%.0f min_ns=%.0f median_ns=%.0f runs=%d run_sd_ns=%.0f",
	       label, nsamples, mean, sqrt(sq / (nsamples - 1)), samples[0], samples[nsamples / 2], nruns,
	       nruns > 1 ? sqrt(rsq / (nruns - 1)) : 0.0);
	/* The distribution: quantiles, per mille. */
	static const int q[] = { 10, 50, 100, 250, 750, 900, 950, 990, 999 };
	for (size_t k = 0; k < sizeof(q) / sizeof(q[0]); k++)
		printf(" q%d_ns=%.0f", q[k], samples[(nsamples - 1) * q[k] / 1000]);
	printf("\n");
}

static size_t *shuffled(size_t n)
{
	size_t *o = malloc(n * sizeof(*o)), i;

	if (!o)
		DIE("out of memory");
	for (i = 0; i < n; i++)
		o[i] = i;
	for (i = n - 1; i > 0; i--) {
		size_t j = (size_t)rand() % (i + 1), t = o[i];

		o[i] = o[j];
		o[j] = t;
	}
	return o;
}

/* Touches every page once in random order, one sample per touch. */
static void touch_all(volatile const char *p, size_t pages)
{
	size_t *order = shuffled(pages), i;
	unsigned sink = 0;

	for (i = 0; i < pages; i++) {
		uint64_t t = now_ns();

		sink += p[order[i] * PAGE];
		add((double)(now_ns() - t));
	}
	free(order);
	if (sink == 0xdeadbeef)
		puts("");
}

static void drop_caches(void)
{
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);

	sync();
	if (fd < 0 || write(fd, "3", 1) != 1)
		DIE("cannot drop caches: %s", strerror(errno));
	close(fd);
}

/* Maps each page of FILE alone (so fault-around cannot map neighbours)
 * and times the first touch: one fault per sample. */
static void touch_file(int fd, size_t pages)
{
	size_t *order = shuffled(pages), i;
	unsigned sink = 0;

	for (i = 0; i < pages; i++) {
		volatile const char *p = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, (off_t)order[i] * PAGE);
		uint64_t t;

		if (p == MAP_FAILED)
			DIE("mmap: %s", strerror(errno));
		/* No read-around: every file system fetches just this page. */
		if (madvise((void *)p, PAGE, MADV_RANDOM))
			DIE("madvise: %s", strerror(errno));
		t = now_ns();
		sink += p[0];
		add((double)(now_ns() - t));
		munmap((void *)p, PAGE);
	}
	free(order);
	if (sink == 0xdeadbeef)
		puts("");
}

static void bench_fault(const char *file, size_t pages, int rounds, int drop)
{
	for (int r = 0; r < rounds; r++) {
		int fd;

		if (drop)
			drop_caches();
		fd = open(file, O_RDONLY);
		if (fd < 0)
			DIE("%s: %s", file, strerror(errno));
		if (!drop && r == 0) {
			/* Warm the cache: only minor faults are measured. */
			touch_file(fd, pages);
			nsamples = 0;
		}
		new_run();
		touch_file(fd, pages);
		close(fd);
	}
}

static int uffd;
static char source[PAGE];

static void *uffd_handler(void *arg)
{
	(void)arg;
	for (;;) {
		struct uffd_msg msg;
		struct pollfd pfd = { .fd = uffd, .events = POLLIN };

		if (poll(&pfd, 1, -1) < 0)
			DIE("poll: %s", strerror(errno));
		if (read(uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event == UFFD_EVENT_PAGEFAULT) {
			struct uffdio_copy c = {
				.dst = msg.arg.pagefault.address & ~(uint64_t)(PAGE - 1),
				.src = (uint64_t)(uintptr_t)source,
				.len = PAGE,
			};

			if (ioctl(uffd, UFFDIO_COPY, &c) && errno != EEXIST)
				DIE("UFFDIO_COPY: %s", strerror(errno));
		}
	}
	return NULL;
}

static void bench_uffd(size_t pages, int rounds)
{
	struct uffdio_api api = { .api = UFFD_API };
	pthread_t th;

	memset(source, 7, sizeof(source));
	uffd = syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (uffd < 0)
		DIE("userfaultfd: %s", strerror(errno));
	if (ioctl(uffd, UFFDIO_API, &api))
		DIE("UFFDIO_API: %s", strerror(errno));
	if (pthread_create(&th, NULL, uffd_handler, NULL))
		DIE("pthread_create");
	for (int r = 0; r < rounds; r++) {
		char *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct uffdio_register reg = {
			.range = { .start = (uint64_t)(uintptr_t)p, .len = pages * PAGE },
			.mode = UFFDIO_REGISTER_MODE_MISSING,
		};

		if (p == MAP_FAILED)
			DIE("mmap: %s", strerror(errno));
		if (ioctl(uffd, UFFDIO_REGISTER, &reg))
			DIE("UFFDIO_REGISTER: %s", strerror(errno));
		new_run();
		touch_all(p, pages);
		munmap(p, pages * PAGE);
	}
}

static void full(int fd, void *b, size_t n, int rd)
{
	size_t done = 0;

	while (done < n) {
		ssize_t k = rd ? read(fd, (char *)b + done, n - done) : write(fd, (char *)b + done, n - done);

		if (k <= 0)
			DIE("tcp %s: %s", rd ? "read" : "write", k ? strerror(errno) : "eof");
		done += (size_t)k;
	}
}

/* Answers every 16-byte request on one connection of `ls` with a page. */
static void tcp_serve(int ls)
{
	int one = 1, s = accept(ls, NULL, NULL);
	char req[16], page[PAGE];

	if (s < 0)
		DIE("tcp accept: %s", strerror(errno));
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(page, 3, sizeof(page));
	for (;;) {
		if (read(s, req, sizeof(req)) <= 0)
			return;
		full(s, page, PAGE, 0);
	}
}

static int tcp_listen(struct sockaddr_in *a)
{
	socklen_t alen = sizeof(*a);
	int one = 1, ls = socket(AF_INET, SOCK_STREAM, 0);

	setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ls < 0 || bind(ls, (void *)a, sizeof(*a)) || listen(ls, 1) || getsockname(ls, (void *)a, &alen))
		DIE("tcp listen: %s", strerror(errno));
	return ls;
}

/* `host` NULL: against a server forked on loopback. */
static void bench_tcp(int rounds, const char *host, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1, c;
	char req[16] = { 0 }, page[PAGE];
	pid_t pid = -1;

	if (host) {
		a.sin_port = htons(port);
		if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
			DIE("tcp: bad address %s", host);
	} else {
		int ls = tcp_listen(&a);

		pid = fork();
		if (pid == 0) {
			tcp_serve(ls);
			_exit(0);
		}
		close(ls);
	}
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (c < 0 || connect(c, (void *)&a, sizeof(a)))
		DIE("tcp connect: %s", strerror(errno));
	setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	for (int r = 0; r < rounds; r++) {
		uint64_t t = now_ns();

		full(c, req, sizeof(req), 0);
		full(c, page, PAGE, 1);
		if (r > 0) /* the first round sets the connection up */
			add((double)(now_ns() - t));
	}
	close(c);
	if (pid > 0)
		waitpid(pid, NULL, 0);
}

#define MIB (1024 * 1024)

static void bench_seq(char **files, int nfiles)
{
	char *buf = malloc(MIB);

	if (!buf)
		DIE("seq: out of memory");
	for (int i = 0; i < nfiles; i++) {
		int fd = open(files[i], O_RDONLY);
		uint64_t t = now_ns();
		size_t total = 0;
		ssize_t k;

		if (fd < 0)
			DIE("seq: %s: %s", files[i], strerror(errno));
		while ((k = read(fd, buf, MIB)) > 0)
			total += (size_t)k;
		if (k < 0)
			DIE("seq: %s: %s", files[i], strerror(errno));
		close(fd);
		if (total < MIB)
			DIE("seq: %s: only %zu bytes", files[i], total);
		new_run();
		add((double)(now_ns() - t) / ((double)total / MIB));
	}
	free(buf);
}

static void tcp_sink(int ls)
{
	int s = accept(ls, NULL, NULL);
	char *buf = malloc(MIB), ack = 1;
	uint64_t len;

	if (s < 0 || !buf)
		DIE("tcp-sink: %s", strerror(errno));
	for (;;) {
		full(s, &len, sizeof(len), 1);
		if (len == 0)
			return;
		while (len > 0) {
			size_t n = len < MIB ? len : MIB;

			full(s, buf, n, 1);
			len -= n;
		}
		full(s, &ack, 1, 0);
	}
}

static void bench_tcp_bw(int rounds, int mib, const char *host, int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	char *buf = calloc(1, MIB), ack;
	uint64_t len = (uint64_t)mib * MIB, end = 0;
	int c = socket(AF_INET, SOCK_STREAM, 0);

	if (!buf || inet_pton(AF_INET, host, &a.sin_addr) != 1)
		DIE("tcp-bw: bad address %s", host);
	if (c < 0 || connect(c, (void *)&a, sizeof(a)))
		DIE("tcp-bw connect: %s", strerror(errno));
	for (int r = 0; r < rounds; r++) {
		uint64_t t = now_ns();

		full(c, &len, sizeof(len), 0);
		for (int i = 0; i < mib; i++)
			full(c, buf, MIB, 0);
		full(c, &ack, 1, 1);
		new_run();
		add((double)(now_ns() - t) / mib);
	}
	full(c, &end, sizeof(end), 0);
	close(c);
	free(buf);
}

static void bench_fault1(size_t pages, char **files, int nfiles)
{
	for (int f = 0; f < nfiles; f++) {
		int fd = open(files[f], O_RDONLY);

		if (fd < 0)
			DIE("%s: %s", files[f], strerror(errno));
		new_run();
		touch_file(fd, pages);
		close(fd);
	}
}

static void bench_share(const char *label, const char *file, int percent, int host, int traversals,
			int reads)
{
	int fd = open(file, O_RDWR), shared = (8 * percent + 50) / 100, set[8];
	volatile unsigned char *p;
	volatile unsigned sink = 0;
	uint64_t t;

	if (fd < 0)
		DIE("%s: %s", file, strerror(errno));
	if (host < 0 || host > 1 || percent < 0 || percent > 100)
		DIE("share: HOST is 0 or 1, PERCENT 0..100");
	p = mmap(NULL, 16 * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		DIE("mmap %s: %s", file, strerror(errno));
	/* Pages 0..shared-1 are both hosts'; host 0's own follow them, and
	 * host 1's own are at the end: 16 - shared pages in use. */
	for (int i = 0; i < 8; i++)
		set[i] = i < shared ? i : host == 0 ? i : 8 + (i - shared);
	t = now_ns();
	for (int v = 0; v < 800 * traversals; v++) {
		volatile unsigned char *b = p + (size_t)set[v % 8] * PAGE;

		if (!reads) {
			for (int k = 0; k < 1000; k++)
				*b = *b + 1;
			continue;
		}
		for (int k = 0; k < 1000; k++)
			sink += *b;
		if (host == 0 && v % 100 == 99)
			*b = *b + 1;
	}
	t = now_ns() - t;
	if (msync((void *)p, 16 * PAGE, MS_SYNC))
		DIE("msync: %s", strerror(errno));
	printf("%s total_ns=%llu per_traversal_ns=%llu shared=%d\n", label, (unsigned long long)t,
	       (unsigned long long)t / traversals, shared);
}

static void bench_copy(int rounds)
{
	char *a = aligned_alloc(PAGE, PAGE), *b = aligned_alloc(PAGE, PAGE);

	memset(a, 1, PAGE);
	memset(b, 2, PAGE);
	for (int r = 0; r < rounds; r++) {
		uint64_t t = now_ns();

		memcpy(r & 1 ? a : b, r & 1 ? b : a, PAGE);
		__asm__ volatile("" ::: "memory");
		add((double)(now_ns() - t));
	}
}

static void bench_remap(int rounds)
{
	char *area = mmap(NULL, 2 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (area == MAP_FAILED)
		DIE("mmap: %s", strerror(errno));
	area[0] = 1;
	for (int r = 0; r < rounds; r++) {
		char *from = area + (r & 1) * PAGE, *to = area + !(r & 1) * PAGE;
		uint64_t t = now_ns();

		if (mremap(from, PAGE, PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, to) == MAP_FAILED)
			DIE("mremap: %s", strerror(errno));
		add((double)(now_ns() - t));
		if (to[0] != 1)
			DIE("mremap lost the page");
	}
}

int main(int argc, char **argv)
{
	srand(1);
	if (argc >= 6 && strcmp(argv[1], "fault") == 0)
		bench_fault(argv[3], strtoull(argv[4], NULL, 0), atoi(argv[5]),
			    argc > 6 && strcmp(argv[6], "drop") == 0);
	else if (argc == 5 && strcmp(argv[1], "uffd") == 0)
		bench_uffd(strtoull(argv[3], NULL, 0), atoi(argv[4]));
	else if (argc >= 5 && strcmp(argv[1], "fault1") == 0)
		bench_fault1(strtoull(argv[3], NULL, 0), argv + 4, argc - 4);
	else if (argc == 4 && strcmp(argv[1], "tcp") == 0)
		bench_tcp(atoi(argv[3]), NULL, 0);
	else if (argc == 6 && strcmp(argv[1], "tcp") == 0)
		bench_tcp(atoi(argv[3]), argv[4], atoi(argv[5]));
	else if (argc >= 4 && strcmp(argv[1], "seq") == 0)
		bench_seq(argv + 3, argc - 3);
	else if (argc == 7 && strcmp(argv[1], "tcp-bw") == 0)
		bench_tcp_bw(atoi(argv[3]), atoi(argv[4]), argv[5], atoi(argv[6]));
	else if (argc == 3 && strcmp(argv[1], "tcp-sink") == 0) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };

		tcp_sink(tcp_listen(&a));
		return 0;
	} else if (argc == 3 && strcmp(argv[1], "tcp-serve") == 0) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };

		tcp_serve(tcp_listen(&a));
		return 0;
	} else if (argc == 7 && strcmp(argv[1], "share") == 0 && atoi(argv[6]) > 0) {
		bench_share(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), 0);
		return 0;
	} else if (argc == 7 && strcmp(argv[1], "rshare") == 0 && atoi(argv[6]) > 0) {
		bench_share(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]), atoi(argv[6]), 1);
		return 0;
	}
	else if (argc == 4 && strcmp(argv[1], "copy") == 0)
		bench_copy(atoi(argv[3]));
	else if (argc == 4 && strcmp(argv[1], "remap") == 0)
		bench_remap(atoi(argv[3]));
	else {
		fprintf(stderr, "usage: see the comment at the top of bench/wfsbench.c\n");
		return 2;
	}
	report(argv[2]);
	return 0;
}
