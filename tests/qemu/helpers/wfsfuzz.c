// SPDX-License-Identifier: GPL-2.0
// wfsfuzz ITERATIONS SEED MIN: registers on /dev/wfs as the manager (none may
// be registered) and mixes ITERATIONS rounds of bad input with correct
// service of the requests that arrive. It serves files "f<N>", one page
// each, whose bytes are all (N & 0xff); every other name is ENOENT.
//
// Bad input: random bytes of random length, well-formed replies to ids
// never handed out, replies with the wrong opcode, a negative errno, a
// truncated or padded body, or a body that does not fit the opcode, a
// second reply to the same request, short read buffers, random ioctls, a
// second REGISTER, STATUS to a bad pointer, and mmaps of the pool with a
// wrong size, offset or mode. Every one must fail with the errno the ABI
// documents; every correct reply must succeed. Exits 1 on the first
// surprise, or if fewer than MIN real requests arrived and were answered
// (a run without traffic proves little), 0 otherwise.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define MSG_MAX 335
#define HDR 16
#define PAGE 4096
#define IOC_REGISTER 0xC0205701u
#define IOC_STATUS 0x80205702u
#define OP_LOOKUP 1
#define OP_GETATTR 2
#define OP_READDIR 3
#define OP_READ 4
#define REPLY 0x8000
#define FILE_BASE 0x8000000000001000ull

static int fd;
static uint8_t *pool;
static uint32_t pool_slots;
static unsigned long answered, refused;

#define FAIL(...) do { fprintf(stderr, "wfsfuzz: " __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

static void put16(uint8_t *b, uint16_t v) { memcpy(b, &v, 2); }
static void put32(uint8_t *b, uint32_t v) { memcpy(b, &v, 4); }
static void put64(uint8_t *b, uint64_t v) { memcpy(b, &v, 8); }
static uint16_t get16(const uint8_t *b) { uint16_t v; memcpy(&v, b, 2); return v; }
static uint32_t get32(const uint8_t *b) { uint32_t v; memcpy(&v, b, 4); return v; }
static uint64_t get64(const uint8_t *b) { uint64_t v; memcpy(&v, b, 8); return v; }

static size_t header(uint8_t *b, size_t len, uint16_t op, uint64_t id, int32_t err)
{
	put32(b, len);
	put16(b + 4, op | REPLY);
	put16(b + 6, 0);
	put64(b + 8, id);
	put32(b + HDR, (uint32_t)err);
	return len;
}

/* Builds the correct reply to a request; returns its length. */
static size_t answer(const uint8_t *req, uint8_t *out)
{
	uint16_t op = get16(req + 4);
	uint64_t id = get64(req + 8);
	const uint8_t *p = req + HDR;

	switch (op) {
	case OP_LOOKUP: {
		uint16_t n = get16(p);
		char name[256] = { 0 };
		unsigned long num;
		char *end;

		memcpy(name, p + 2, n < 255 ? n : 255);
		num = name[0] == 'f' ? strtoul(name + 1, &end, 10) : 0;
		if (name[0] != 'f' || *end || num == 0)
			return header(out, HDR + 4, op, id, ENOENT);
		header(out, HDR + 4 + 24, op, id, 0);
		put64(out + HDR + 4, FILE_BASE + num);
		put64(out + HDR + 12, PAGE);
		put32(out + HDR + 20, 0644);
		put32(out + HDR + 24, 0);
		return HDR + 4 + 24;
	}
	case OP_GETATTR:
		header(out, HDR + 4 + 24, op, id, 0);
		put64(out + HDR + 4, get64(p));
		put64(out + HDR + 12, PAGE);
		put32(out + HDR + 20, 0644);
		put32(out + HDR + 24, 0);
		return HDR + 4 + 24;
	case OP_READDIR:
		header(out, HDR + 4 + 18, op, id, 0);
		memset(out + HDR + 4, 0, 18);
		return HDR + 4 + 18;
	case OP_READ: {
		uint64_t file = get64(p), index = get64(p + 8);
		uint32_t slot = get32(p + 20);

		if (slot >= pool_slots)
			FAIL("kernel lent slot %u of %u", slot, pool_slots);
		memset(pool + (size_t)slot * PAGE, index == 0 ? (int)((file - FILE_BASE) & 0xff) : 0, PAGE);
		header(out, HDR + 4 + 4, op, id, 0);
		put32(out + HDR + 4, 2);
		return HDR + 8;
	}
	default:
		return header(out, HDR + 4, op, id, 38 /* ENOSYS */);
	}
}

static void expect_fail(ssize_t rc, int want1, int want2, const char *what)
{
	if (rc >= 0)
		FAIL("%s was accepted", what);
	if (errno != want1 && errno != want2)
		FAIL("%s: errno %d (%s), expected %d or %d", what, errno, strerror(errno), want1, want2);
	refused++;
}

/* Sends bad variants of the reply `good` (length n), then `good` itself,
 * then `good` again. */
static void serve(const uint8_t *good, size_t n)
{
	uint8_t bad[MSG_MAX + 8];
	uint16_t op = get16(good + 4) & ~REPLY;

	memcpy(bad, good, n);
	put16(bad + 4, (op == OP_READ ? OP_LOOKUP : OP_READ) | REPLY);
	expect_fail(write(fd, bad, n), EINVAL, EINVAL, "reply with the wrong opcode");

	memcpy(bad, good, n);
	put64(bad + 8, get64(good + 8) + 256);
	expect_fail(write(fd, bad, n), ENOENT, EINVAL, "reply to an id never handed out");

	memcpy(bad, good, n);
	put32(bad, n - 1);
	expect_fail(write(fd, bad, n - 1), EINVAL, EINVAL, "truncated reply");

	memcpy(bad, good, n);
	bad[n] = 0;
	put32(bad, n + 1);
	expect_fail(write(fd, bad, n + 1), EINVAL, EINVAL, "padded reply");

	memcpy(bad, good, n);
	put32(bad + HDR, (uint32_t)-5);
	expect_fail(write(fd, bad, n), EINVAL, EINVAL, "negative errno");

	if (write(fd, good, n) != (ssize_t)n)
		FAIL("correct reply refused: %s", strerror(errno));
	answered++;
	expect_fail(write(fd, good, n), ENOENT, ENOENT, "second reply to the same request");
}

static void random_bytes(uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		b[i] = rand();
}

int main(int argc, char **argv)
{
	uint8_t reg[32] = { 0 }, buf[MSG_MAX + 64], out[MSG_MAX];
	long iters, min_answered;

	if (argc != 4) {
		fprintf(stderr, "usage: wfsfuzz ITERATIONS SEED MIN\n");
		return 2;
	}
	iters = atol(argv[1]);
	min_answered = atol(argv[3]);
	srand(atoi(argv[2]));
	fd = open("/dev/wfs", O_RDWR | O_NONBLOCK);
	if (fd < 0)
		FAIL("open: %s", strerror(errno));
	put32(reg, 0x57465331);
	put32(reg + 4, 1);
	if (ioctl(fd, IOC_REGISTER, reg) < 0)
		FAIL("register: %s", strerror(errno));
	pool_slots = get32(reg + 16);
	pool = mmap(NULL, (size_t)pool_slots * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (pool == MAP_FAILED)
		FAIL("mmap pool: %s", strerror(errno));

	for (long i = 0; i < iters; i++) {
		ssize_t n;

		switch (rand() % 8) {
		case 0: { /* random bytes */
			size_t len = rand() % (MSG_MAX + 40);

			random_bytes(buf, len);
			n = write(fd, buf, len);
			if (n >= 0)
				FAIL("random %zu bytes accepted", len);
			refused++;
			break;
		}
		case 1: { /* well-formed replies to ids never handed out */
			size_t len = header(buf, HDR + 4 + 24, 1 + rand() % 6, ((uint64_t)rand() << 32) | rand(), 0);

			memset(buf + HDR + 4, 0, 24);
			n = write(fd, buf, len);
			expect_fail(n, ENOENT, EINVAL, "reply to a random id");
			break;
		}
		case 2: /* ioctls */
			expect_fail(ioctl(fd, IOC_REGISTER, reg), EBUSY, EBUSY, "second REGISTER");
			expect_fail(ioctl(fd, IOC_STATUS, (void *)8), EFAULT, EFAULT, "STATUS to a bad pointer");
			expect_fail(ioctl(fd, 0x5700 + rand() % 256, buf), ENOTTY, ENOTTY, "unknown ioctl");
			break;
		case 3: /* short read buffer */
			expect_fail(read(fd, buf, rand() % MSG_MAX), EINVAL, EINVAL, "short read buffer");
			break;
		case 4: { /* bad mmaps of the pool */
			void *p = mmap(NULL, (size_t)(pool_slots - 1) * PAGE, PROT_READ, MAP_SHARED, fd, 0);

			if (p != MAP_FAILED)
				FAIL("mmap of the wrong size accepted");
			p = mmap(NULL, (size_t)pool_slots * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
			if (p != MAP_FAILED)
				FAIL("private mmap accepted");
			p = mmap(NULL, (size_t)pool_slots * PAGE, PROT_READ, MAP_SHARED, fd, PAGE);
			if (p != MAP_FAILED)
				FAIL("mmap at an offset accepted");
			refused += 3;
			break;
		}
		default: /* serve a request, waiting a little for one */
			for (int tries = 0; tries < 50; tries++) {
				n = read(fd, buf, sizeof(buf));
				if (n >= 0 || errno != EAGAIN)
					break;
				usleep(200);
			}
			if (n < 0) {
				if (errno != EAGAIN)
					FAIL("read: %s", strerror(errno));
				break;
			}
			serve(out, answer(buf, out));
		}
	}
	printf("wfsfuzz: %ld rounds, %lu bad inputs refused as documented, %lu requests answered\n",
	       iters, refused, answered);
	if ((long)answered < min_answered)
		FAIL("only %lu real requests answered, wanted %ld", answered, min_answered);
	return 0;
}
