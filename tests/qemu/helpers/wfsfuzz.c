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
// second REGISTER, STATUS to a bad pointer, INVALIDATE and FORGET with bad
// modes, slots, reserved fields, names and pointers or from a file that is
// not the manager's, and mmaps of the pool with a wrong size, offset or
// mode. Every one must fail with the errno the ABI
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
#define IOC_INVALIDATE 0xC0205703u
#define IOC_FORGET 0x41085704u
#define SCRATCH_SLOTS 8
#define ABI_VERSION 3
#define OP_LOOKUP 1
#define OP_GETATTR 2
#define OP_READDIR 3
#define OP_READ 4
#define REPLY 0x8000
#define FILE_BASE 0x8000000000001000ull

static int fd, other;
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

		if (slot >= pool_slots - SCRATCH_SLOTS)
			FAIL("kernel lent slot %u of %u (the last %u are the manager's)",
			     slot, pool_slots, SCRATCH_SLOTS);
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

/* Bad INVALIDATE and FORGET calls; `other` is an open file that is not
 * the manager's. A well-formed INVALIDATE of a file nobody has cached
 * must succeed and report nothing. */
static void bad_invalidations(int other)
{
	uint8_t inv[32], fg[264];
	uint32_t scratch = pool_slots - SCRATCH_SLOTS + rand() % SCRATCH_SLOTS;

	memset(inv, 0, sizeof(inv));
	put64(inv, 0x4000000000000000ull | ((uint64_t)rand() << 20)); /* no such file */
	put64(inv + 8, rand() % 16);
	put32(inv + 16, 1 + rand() % 2);
	put32(inv + 20, scratch);
	expect_fail(ioctl(other, IOC_INVALIDATE, inv), EPERM, EPERM, "INVALIDATE by a non-manager");
	if (ioctl(fd, IOC_INVALIDATE, inv) != 0)
		FAIL("INVALIDATE of an uncached page: %s", strerror(errno));
	if (get32(inv + 24) != 0)
		FAIL("INVALIDATE of an uncached page reported flags %#x", get32(inv + 24));
	put32(inv + 16, rand() % 2 ? 0 : 3 + rand() % 100);
	expect_fail(ioctl(fd, IOC_INVALIDATE, inv), EINVAL, EINVAL, "INVALIDATE with a bad mode");
	put32(inv + 16, 1);
	put32(inv + 20, rand() % (pool_slots - SCRATCH_SLOTS));
	expect_fail(ioctl(fd, IOC_INVALIDATE, inv), EINVAL, EINVAL, "INVALIDATE into a request slot");
	put32(inv + 20, pool_slots + rand() % 1000);
	expect_fail(ioctl(fd, IOC_INVALIDATE, inv), EINVAL, EINVAL, "INVALIDATE into a slot past the pool");
	put32(inv + 20, scratch);
	put32(inv + 24 + 4 * (rand() % 2), 1 + rand());
	expect_fail(ioctl(fd, IOC_INVALIDATE, inv), EINVAL, EINVAL, "INVALIDATE with flags or reserved set");
	expect_fail(ioctl(fd, IOC_INVALIDATE, (void *)16), EFAULT, EFAULT, "INVALIDATE to a bad pointer");

	memset(fg, 0, sizeof(fg));
	put32(fg, 3);
	memcpy(fg + 8, "zzz", 3);
	expect_fail(ioctl(other, IOC_FORGET, fg), EPERM, EPERM, "FORGET by a non-manager");
	if (ioctl(fd, IOC_FORGET, fg) != 0)
		FAIL("FORGET of a name: %s", strerror(errno));
	switch (rand() % 4) {
	case 0: put32(fg, 0); break;                    /* empty name */
	case 1: put32(fg, 256 + rand() % 1000); break;  /* too long */
	case 2: fg[9] = '/'; break;                     /* a slash */
	default: put32(fg + 4, 1 + rand()); break;      /* reserved */
	}
	expect_fail(ioctl(fd, IOC_FORGET, fg), EINVAL, EINVAL, "FORGET of a bad name");
	expect_fail(ioctl(fd, IOC_FORGET, (void *)16), EFAULT, EFAULT, "FORGET from a bad pointer");
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
	put32(reg + 4, ABI_VERSION);
	if (ioctl(fd, IOC_REGISTER, reg) < 0)
		FAIL("register: %s", strerror(errno));
	pool_slots = get32(reg + 16);
	other = open("/dev/wfs", O_RDWR);
	if (other < 0)
		FAIL("second open: %s", strerror(errno));
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
			bad_invalidations(other);
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
