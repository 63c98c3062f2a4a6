// SPDX-License-Identifier: GPL-2.0
// wfsfuzz ITERATIONS SEED MIN: registers on /dev/wfs as the manager (none may
// be registered) and mixes ITERATIONS rounds of bad input with correct
// service of the requests that arrive. Other modes (see the end of the file):
//   wfsfuzz errors          every reply errno 1..4095 against LOOKUP and READ
//   wfsfuzz stall           registers, serves nothing until SIGUSR1
//   wfsfuzz killrace ROUNDS SIGKILL the reader of a page, then grant it dirty
//   wfsfuzz umount          INVALIDATE while an unmount writes a page back
//   wfsfuzz refault         an UPGRADE answered "refault" (the copy is
//                           stale): the kernel reads the page in anew
//   wfsfuzz hardening       the pool is the manager's alone, and cleared
//                           between sessions; a REGISTER whose answer cannot
//                           be written back leaves no session. It serves files "f<N>", one page
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
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MSG_MAX 590
#define HDR 16
#define PAGE 4096
#define IOC_REGISTER 0xC0205701u
#define IOC_STATUS 0x80205702u
#define IOC_INVALIDATE 0xC0205703u
#define IOC_FORGET 0x41085704u
#define IOC_SIZE 0x40185705u
#define IOC_OPENS 0xc0105706u
#define OPENS_MAX 65536
#define SCRATCH_SLOTS 8
#define ABI_VERSION 16
/* An attr reply body: file, size, mode, mtime (nsec, sec), ctime (sec,
 * nsec), 4 reserved bytes. */
#define ATTR_LEN 56
#define NSEC_PER_SEC 1000000000u
/* READ replies: grant, pages, ahead. */
#define READ_REPLY (HDR + 4 + 12)
#define READ_RUN_MAX 16
#define OP_LOOKUP 1
#define OP_GETATTR 2
#define OP_READDIR 3
#define OP_READ 4
#define OP_WRITE 5
#define OP_UPGRADE 6
#define OP_LOCK 8
#define OP_SETSIZE 9
#define OP_CREATE 10
#define OP_UNLINK 11
#define OP_RENAME 12
#define OP_OPEN 13
#define OP_RELEASE 14
#define OP_SETTIMES 15
#define LOCK_END_MAX 0x7fffffffffffffffull
#define MAX_REPLY_ERRNO 511
#define REPLY 0x8000
#define FILE_BASE 0x8000000000001000ull

static int fd, other;
static uint8_t *pool;
static uint32_t pool_slots;
static unsigned long answered, refused, locks, setsizes, names, renames, opens, releases, settimes;

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

/* Builds a READ reply granting one page; returns its length. */
static size_t read_reply(uint8_t *b, uint64_t id, uint32_t grant)
{
	header(b, READ_REPLY, OP_READ, id, 0);
	put32(b + HDR + 4, grant);
	put32(b + HDR + 8, 1);
	put32(b + HDR + 12, (uint32_t)rand());
	return READ_REPLY;
}

/* Builds attr reply `op` `id` of `file`; returns its length. Its times are
 * random, valid ones. */
static size_t attr(uint8_t *out, uint16_t op, uint64_t id, uint64_t file, uint64_t size, uint32_t mode)
{
	uint8_t *a = out + HDR + 4;

	header(out, HDR + 4 + ATTR_LEN, op, id, 0);
	memset(a, 0, ATTR_LEN);
	put64(a, file);
	put64(a + 8, size);
	put32(a + 16, mode);
	put32(a + 20, (uint32_t)rand() % NSEC_PER_SEC);
	put64(a + 24, 1700000000ull + (uint64_t)(rand() % 100000000));
	put64(a + 32, 1700000000ull + (uint64_t)(rand() % 100000000));
	put32(a + 40, (uint32_t)rand() % NSEC_PER_SEC);
	return HDR + 4 + ATTR_LEN;
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
		return attr(out, op, id, FILE_BASE + num, PAGE, 0644);
	}
	case OP_GETATTR:
		return attr(out, op, id, get64(p), PAGE, 0644);
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
		return read_reply(out, id, 2);
	}
	case OP_LOCK:
		locks++;
		/* A test (cmd 1, at byte 41 of the body) gets "no conflict" or
		 * a conflict elsewhere; anything else "done", now and then a
		 * refusal or ENOSYS (the kernel then locks on its own). */
		if (p[41] == 1) {
			int busy = rand() % 2;

			header(out, HDR + 4 + 24, op, id, 0);
			put64(out + HDR + 4, 0);
			put64(out + HDR + 12, busy ? 99 : 0);
			put32(out + HDR + 20, busy ? (uint32_t)-7 : 0);
			put32(out + HDR + 24, busy ? 2 : 3);
			return HDR + 4 + 24;
		}
		switch (rand() % 4) {
		case 0: return header(out, HDR + 4, op, id, 11 /* EAGAIN */);
		case 1: return header(out, HDR + 4, op, id, 38 /* ENOSYS */);
		default: return header(out, HDR + 4, op, id, 0);
		}
	case OP_SETSIZE:
		setsizes++;
		/* A growth (flag 1, at byte 16 of the body) is mostly done; a
		 * truncation refused now and then (the size stays). */
		switch (rand() % 4) {
		case 0: return header(out, HDR + 4, op, id, get32(p + 16) ? 5 /* EIO */ : 95 /* EOPNOTSUPP */);
		default: return header(out, HDR + 4, op, id, 0);
		}
	case OP_CREATE:
		names++;
		/* Made (attributes of a new, empty file), or EEXIST. */
		if (rand() % 3 == 0)
			return header(out, HDR + 4, op, id, 17 /* EEXIST */);
		return attr(out, op, id, FILE_BASE + 0x100000 + rand() % 1000, 0, get32(p) & 07777);
	case OP_UNLINK:
		names++;
		return header(out, HDR + 4, op, id, rand() % 4 ? 0 : 2 /* ENOENT */);
	case OP_RENAME:
		renames++;
		/* Done, or EXDEV (the program copies). */
		return header(out, HDR + 4, op, id, rand() % 4 ? 0 : 18 /* EXDEV */);
	case OP_OPEN:
		opens++;
		/* Opened (the modes' programs need their files open). */
		return header(out, HDR + 4, op, id, 0);
	case OP_SETTIMES:
		settimes++;
		/* Set, or refused (the owner's disk is read-only). */
		return header(out, HDR + 4, op, id, rand() % 4 ? 0 : 30 /* EROFS */);
	case OP_RELEASE:
		releases++;
		/* Done; an error is only logged by nobody (close cannot fail). */
		return header(out, HDR + 4, op, id, rand() % 8 ? 0 : 5 /* EIO */);
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

	/* SIZE: only the manager; a size past the largest file, an unknown
	 * flag or a reserved field set is refused; a file nobody has cached
	 * is fine (nothing to grow or cut), a cut (flag 1) too. */
	memset(fg, 0, 24);
	put64(fg, 0x4000000000000000ull | ((uint64_t)rand() << 20));
	put64(fg + 8, rand() % 100000);
	expect_fail(ioctl(other, IOC_SIZE, fg), EPERM, EPERM, "SIZE by a non-manager");
	if (ioctl(fd, IOC_SIZE, fg) != 0)
		FAIL("SIZE of an uncached file: %s", strerror(errno));
	put32(fg + 16, 1);
	if (ioctl(fd, IOC_SIZE, fg) != 0)
		FAIL("SIZE cut of an uncached file: %s", strerror(errno));
	put32(fg + 16, 2 + rand() % 1000);
	expect_fail(ioctl(fd, IOC_SIZE, fg), EINVAL, EINVAL, "SIZE with an unknown flag");
	put32(fg + 16, 1);
	put32(fg + 20, 1 + rand() % 1000);
	expect_fail(ioctl(fd, IOC_SIZE, fg), EINVAL, EINVAL, "SIZE with its reserved field set");
	put32(fg + 20, 0);
	put64(fg + 8, 0x8000000000000000ull + rand());
	expect_fail(ioctl(fd, IOC_SIZE, fg), EINVAL, EINVAL, "SIZE past the largest file");
	expect_fail(ioctl(fd, IOC_SIZE, (void *)16), EFAULT, EFAULT, "SIZE from a bad pointer");

	/* OPENS: only the manager; a buffer past OPENS_MAX entries is refused,
	 * a bad block is EFAULT; with room, the list (file, count >= 1, zero
	 * padding) comes, or E2BIG with the count when it does not fit. */
	{
		static uint8_t list[16 * 64];
		uint8_t ob[16];
		uint32_t cap = rand() % 65;

		memset(ob, 0, 16);
		put64(ob, (uint64_t)(uintptr_t)list);
		put32(ob + 8, cap);
		expect_fail(ioctl(other, IOC_OPENS, ob), EPERM, EPERM, "OPENS by a non-manager");
		if (ioctl(fd, IOC_OPENS, ob) == 0) {
			uint32_t n = get32(ob + 12);

			if (n > cap)
				FAIL("OPENS listed %u files in room for %u", n, cap);
			for (uint32_t i = 0; i < n; i++)
				if (get32(list + 16 * i + 8) == 0 || get32(list + 16 * i + 12) != 0)
					FAIL("OPENS entry %u: count %u, padding %u", i,
					     get32(list + 16 * i + 8), get32(list + 16 * i + 12));
		} else if (errno != E2BIG || get32(ob + 12) <= cap) {
			FAIL("OPENS with room for %u: %s, count %u", cap, strerror(errno), get32(ob + 12));
		}
		put32(ob + 8, OPENS_MAX + 1 + rand() % 1000);
		expect_fail(ioctl(fd, IOC_OPENS, ob), EINVAL, EINVAL, "OPENS with room past OPENS_MAX");
		expect_fail(ioctl(fd, IOC_OPENS, (void *)16), EFAULT, EFAULT, "OPENS from a bad pointer");
	}
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

	if (op == OP_READ) {
		/* No pages, more than a READ may ask for, or ABI 5's bare grant. */
		memcpy(bad, good, n);
		put32(bad + HDR + 8, rand() % 2 ? 0 : READ_RUN_MAX + 1 + rand() % 1000);
		expect_fail(write(fd, bad, n), EINVAL, EINVAL, "READ reply with a bad page count");
		memcpy(bad, good, n);
		put32(bad, HDR + 8);
		expect_fail(write(fd, bad, HDR + 8), EINVAL, EINVAL, "READ reply with a bare grant");
	}

	if (op == OP_LOCK) {
		/* A conflict of an unknown mode, or past the largest offset; a
		 * body of neither shape. */
		header(bad, HDR + 4 + 24, op, get64(good + 8), 0);
		put64(bad + HDR + 4, 0);
		put64(bad + HDR + 12, rand() % 2 ? LOCK_END_MAX + 1 : 5);
		put32(bad + HDR + 20, 1);
		put32(bad + HDR + 24, rand() % 2 ? 2 : 4 + rand() % 1000);
		if (get64(bad + HDR + 12) == 5)
			put32(bad + HDR + 24, 4 + rand() % 1000);
		expect_fail(write(fd, bad, HDR + 4 + 24), EINVAL, EINVAL, "LOCK reply with a bad conflict");
		header(bad, HDR + 4 + 10, op, get64(good + 8), 0);
		memset(bad + HDR + 4, 0, 10);
		expect_fail(write(fd, bad, HDR + 4 + 10), EINVAL, EINVAL, "LOCK reply of 10 bytes");
	}

	if ((op == OP_LOOKUP || op == OP_GETATTR || op == OP_CREATE) && n == HDR + 4 + ATTR_LEN) {
		/* A time's nanoseconds of a second or more (mtime's or
		 * ctime's), or ABI 10's 24-byte attr. */
		memcpy(bad, good, n);
		put32(bad + HDR + 4 + (rand() % 2 ? 20 : 40), NSEC_PER_SEC + (uint32_t)rand() % 1000);
		expect_fail(write(fd, bad, n), EINVAL, EINVAL, "attr with a time's nanoseconds past a second");
		memcpy(bad, good, n);
		put32(bad, HDR + 4 + 24);
		expect_fail(write(fd, bad, HDR + 4 + 24), EINVAL, EINVAL, "attr of 24 bytes (ABI 10)");
		/* ABI 14's 48-byte attr (no ids), and a flag this kernel does
		 * not know (bit 0, root squashing, is the only one). */
		memcpy(bad, good, n);
		put32(bad, HDR + 4 + 48);
		expect_fail(write(fd, bad, HDR + 4 + 48), EINVAL, EINVAL, "attr of 48 bytes (ABI 14)");
		memcpy(bad, good, n);
		put32(bad + HDR + 4 + 44, 1u << (1 + rand() % 31));
		expect_fail(write(fd, bad, n), EINVAL, EINVAL, "attr with an unknown flag");
	}

	if (op == OP_CREATE) {
		/* Attributes, or nothing: a bare done is refused. */
		header(bad, HDR + 4, op, get64(good + 8), 0);
		expect_fail(write(fd, bad, HDR + 4), EINVAL, EINVAL, "CREATE reply without attributes");
	}

	if (op == OP_SETSIZE || op == OP_UNLINK || op == OP_RENAME || op == OP_OPEN || op == OP_RELEASE ||
	    op == OP_SETTIMES) {
		/* Done is a bare header: any body is refused. */
		header(bad, HDR + 4 + 8, op, get64(good + 8), 0);
		memset(bad + HDR + 4, 0, 8);
		expect_fail(write(fd, bad, HDR + 4 + 8), EINVAL, EINVAL, "SETSIZE reply with a body");
	}

	/* The kernel's own errnos (ERESTARTSYS 512 .. 4095) are refused. */
	header(bad, HDR + 4, op, get64(good + 8), MAX_REPLY_ERRNO + 1 + rand() % (4095 - MAX_REPLY_ERRNO));
	expect_fail(write(fd, bad, HDR + 4), EINVAL, EINVAL, "errno of 512 or more");

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

static uint8_t reg[32];

/* Registers as the manager (non-blocking reads) and maps the pool. */
static void register_manager(void)
{
	fd = open("/dev/wfs", O_RDWR | O_NONBLOCK);
	if (fd < 0)
		FAIL("open: %s", strerror(errno));
	put32(reg, 0x57465331);
	put32(reg + 4, ABI_VERSION);
	if (ioctl(fd, IOC_REGISTER, reg) < 0)
		FAIL("register: %s", strerror(errno));
	pool_slots = get32(reg + 16);
	pool = mmap(NULL, (size_t)pool_slots * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (pool == MAP_FAILED)
		FAIL("mmap pool: %s", strerror(errno));
}

/* The next request, waiting for it up to about `ms` milliseconds; its
 * length, or 0 if none came. */
static ssize_t next_request(uint8_t *buf, int ms)
{
	for (int waited = 0;; waited++) {
		ssize_t n = read(fd, buf, MSG_MAX + 64);

		if (n > 0)
			return n;
		if (errno != EAGAIN)
			FAIL("read: %s", strerror(errno));
		if (waited >= ms * 5)
			return 0;
		usleep(200);
	}
}

static void send_reply(const uint8_t *out, size_t n, const char *what)
{
	if (write(fd, out, n) != (ssize_t)n)
		FAIL("%s refused: %s", what, strerror(errno));
}

static int mode_errors(void);
static int mode_stall(void);
static int mode_killrace(long rounds);
static int mode_umount(void);
static int mode_hardening(void);
static int mode_refault(void);

int main(int argc, char **argv)
{
	uint8_t buf[MSG_MAX + 64], out[MSG_MAX];
	long iters, min_answered;

	if (argc == 2 && !strcmp(argv[1], "errors"))
		return mode_errors();
	if (argc == 2 && !strcmp(argv[1], "stall"))
		return mode_stall();
	if (argc == 3 && !strcmp(argv[1], "killrace"))
		return mode_killrace(atol(argv[2]));
	if (argc == 2 && !strcmp(argv[1], "umount"))
		return mode_umount();
	if (argc == 2 && !strcmp(argv[1], "hardening"))
		return mode_hardening();
	if (argc == 2 && !strcmp(argv[1], "refault"))
		return mode_refault();
	if (argc != 4) {
		fprintf(stderr, "usage: wfsfuzz ITERATIONS SEED MIN | errors | stall | killrace ROUNDS | umount | hardening | refault\n");
		return 2;
	}
	iters = atol(argv[1]);
	min_answered = atol(argv[3]);
	srand(atoi(argv[2]));
	register_manager();
	other = open("/dev/wfs", O_RDWR);
	if (other < 0)
		FAIL("second open: %s", strerror(errno));

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
	printf("wfsfuzz: %ld rounds, %lu bad inputs refused as documented, %lu requests answered (%lu LOCK, %lu SETSIZE, %lu CREATE or UNLINK, %lu RENAME, %lu OPEN, %lu RELEASE, %lu SETTIMES)\n",
	       iters, refused, answered, locks, setsizes, names, renames, opens, releases, settimes);
	if ((long)answered < min_answered)
		FAIL("only %lu real requests answered, wanted %ld", answered, min_answered);
	if (min_answered > 0 && locks == 0)
		FAIL("no LOCK request came (the traffic locks every tenth file)");
	if (min_answered > 0 && setsizes == 0)
		FAIL("no SETSIZE request came (the traffic grows every seventh file)");
	if (min_answered > 0 && names == 0)
		FAIL("no CREATE request came (the traffic makes every fifth name)");
	if (min_answered > 0 && renames == 0)
		FAIL("no RENAME request came (the traffic renames every name it makes)");
	if (min_answered > 0 && (opens == 0 || releases == 0))
		FAIL("no OPEN or no RELEASE came (the traffic opens and closes files)");
	if (min_answered > 0 && settimes == 0)
		FAIL("no SETTIMES request came (the traffic sets the times of every seventh file)");
	return 0;
}

/*
 * errors: a prober child stats names "x<N>" (LOOKUP) and preads files
 * "f<N>" (LOOKUP answered, then READ). Each LOOKUP of an x name and each
 * READ is answered with the next errno of 1..4095, until both have gone
 * through the whole range. Errnos up to MAX_REPLY_ERRNO must be accepted;
 * larger ones must be refused with EINVAL, and the request is then
 * answered with EIO. The prober fails if user space ever sees an errno of
 * 512 or more, or a call that succeeds although it was answered with an
 * error. The kernel must not oops (the harness checks the console).
 */
static int prober(int done_fd)
{
	char path[64], page[PAGE];
	long ops = 0;
	struct pollfd p = { .fd = done_fd, .events = POLLIN };

	for (unsigned long i = 1;; i++) {
		int f;

		if (poll(&p, 1, 0) > 0) {
			printf("wfsfuzz errors: prober made %ld calls, every errno below 512\n", ops);
			return 0;
		}
		snprintf(path, sizeof(path), "/wfs/x%lu", i);
		if (access(path, F_OK) == 0) {
			fprintf(stderr, "wfsfuzz: stat %s succeeded, answered with an error\n", path);
			return 1;
		}
		if (errno <= 0 || errno >= 512) {
			fprintf(stderr, "wfsfuzz: stat %s: errno %d reached user space\n", path, errno);
			return 1;
		}
		ops++;
		snprintf(path, sizeof(path), "/wfs/f%lu", i);
		f = open(path, O_RDONLY);
		if (f < 0) {
			fprintf(stderr, "wfsfuzz: open %s: %s\n", path, strerror(errno));
			return 1;
		}
		if (pread(f, page, PAGE, 0) >= 0) {
			fprintf(stderr, "wfsfuzz: pread %s succeeded, answered with an error\n", path);
			return 1;
		}
		if (errno <= 0 || errno >= 512) {
			fprintf(stderr, "wfsfuzz: pread %s: errno %d reached user space\n", path, errno);
			return 1;
		}
		close(f);
		ops++;
	}
}

static int mode_errors(void)
{
	uint8_t buf[MSG_MAX + 64], out[MSG_MAX];
	int lookup_e = 1, read_e = 1, pipefd[2], status;
	long refused_big = 0;
	pid_t child;

	register_manager();
	if (pipe(pipefd) < 0)
		FAIL("pipe: %s", strerror(errno));
	child = fork();
	if (child < 0)
		FAIL("fork: %s", strerror(errno));
	if (child == 0) {
		close(fd);
		close(pipefd[1]);
		_exit(prober(pipefd[0]));
	}
	close(pipefd[0]);
	for (;;) {
		ssize_t n;
		uint16_t op;
		int *e = NULL;

		if (lookup_e > 4095 && read_e > 4095 && pipefd[1] >= 0) {
			close(pipefd[1]);
			pipefd[1] = -1;
		}
		if (waitpid(child, &status, WNOHANG) == child)
			break;
		n = next_request(buf, 100);
		if (n == 0)
			continue;
		op = get16(buf + 4);
		if (op == OP_LOOKUP && buf[HDR + 2] == 'x')
			e = &lookup_e;
		else if (op == OP_READ)
			e = &read_e;
		if (!e) {
			send_reply(out, answer(buf, out), "correct reply");
			continue;
		}
		if (*e > 4095) {
			/* Done with the range: EIO until the prober stops. */
			header(out, HDR + 4, op, get64(buf + 8), EIO);
			send_reply(out, HDR + 4, "EIO");
			continue;
		}
		header(out, HDR + 4, op, get64(buf + 8), *e);
		if (*e <= MAX_REPLY_ERRNO) {
			send_reply(out, HDR + 4, "reply with an errno below 512");
		} else {
			expect_fail(write(fd, out, HDR + 4), EINVAL, EINVAL, "reply with an errno of 512 or more");
			refused_big++;
			header(out, HDR + 4, op, get64(buf + 8), EIO);
			send_reply(out, HDR + 4, "EIO after a refused errno");
		}
		(*e)++;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		FAIL("the prober failed (status %#x)", status);
	printf("wfsfuzz errors: errnos 1..4095 sent to LOOKUP and READ, %ld refused (512 and up)\n",
	       refused_big);
	if (refused_big != 2 * (4095 - MAX_REPLY_ERRNO))
		FAIL("expected %d refusals", 2 * (4095 - MAX_REPLY_ERRNO));
	return 0;
}

/*
 * stall: registers and serves nothing until SIGUSR1, then answers every
 * request correctly until SIGTERM; prints how many it answered.
 */
static volatile sig_atomic_t resumed, stop;
static void on_usr1(int sig) { (void)sig; resumed = 1; }
static void on_term(int sig) { (void)sig; stop = 1; }

static int mode_stall(void)
{
	uint8_t buf[MSG_MAX + 64], out[MSG_MAX];
	long served = 0;

	signal(SIGUSR1, on_usr1);
	signal(SIGTERM, on_term);
	register_manager();
	printf("wfsfuzz stall: registered, stalling\n");
	fflush(stdout);
	while (!resumed && !stop)
		usleep(10000);
	printf("wfsfuzz stall: resumed\n");
	fflush(stdout);
	while (!stop) {
		ssize_t n = next_request(buf, 50);

		if (n == 0)
			continue;
		send_reply(out, answer(buf, out), "correct reply");
		served++;
	}
	printf("wfsfuzz stall: answered %ld requests\n", served);
	return 0;
}

/*
 * killrace: in each round a child preads page 0 of file f<round>; on its
 * READ the manager SIGKILLs it and only then grants the page dirty. The
 * manager runs SCHED_FIFO on the child's CPU, so the child only runs again
 * once the reply is in: the fatal signal and the accepted reply are both
 * there when it wakes. An accepted dirty grant is the page's only copy:
 * the page must be in the page cache afterwards (a checker reads it
 * without any READ reaching the manager) and written back with its
 * contents by a final syncfs. Any READ for it means the page was lost.
 */
static uint8_t pattern(uint64_t file) { return (uint8_t)(0x5a ^ (file * 7)); }

/* Serves one request in killrace mode; `victim` (if > 0) is killed
 * before a READ of `victim_file` is granted. Returns 1 if the reply to
 * that READ was accepted. */
static long written_back;
static uint8_t *granted; /* granted[file] = 1: dirty grant accepted */

static int killrace_serve(const uint8_t *buf, pid_t victim, uint64_t victim_file)
{
	uint8_t out[MSG_MAX];
	uint16_t op = get16(buf + 4);
	uint64_t id = get64(buf + 8), file = get64(buf + HDR) - FILE_BASE;
	uint32_t slot = get32(buf + HDR + 20);

	if (op == OP_WRITE) {
		const uint8_t *page = pool + (size_t)slot * PAGE;

		for (int i = 0; i < PAGE; i++)
			if (page[i] != pattern(file))
				FAIL("WRITE of f%llu carries %#x at %d, granted %#x",
				     (unsigned long long)file, page[i], i, pattern(file));
		written_back++;
		header(out, HDR + 4, op, id, 0);
		send_reply(out, HDR + 4, "WRITE reply");
		return 0;
	}
	if (op != OP_READ) {
		send_reply(out, answer(buf, out), "correct reply");
		return 0;
	}
	if (get64(buf + HDR + 8) != 0)
		FAIL("READ of page %llu", (unsigned long long)get64(buf + HDR + 8));
	if (granted[file])
		FAIL("f%llu: READ after its dirty grant was accepted: the page was lost",
		     (unsigned long long)file);
	memset(pool + (size_t)slot * PAGE, pattern(file), PAGE);
	if (victim > 0 && file == victim_file) {
		if (kill(victim, SIGKILL) < 0)
			FAIL("kill: %s", strerror(errno));
		read_reply(out, id, 3 /* dirty */);
		if (write(fd, out, READ_REPLY) == READ_REPLY) {
			granted[file] = 1;
			return 1;
		}
		if (errno != ENOENT)
			FAIL("dirty grant: %s", strerror(errno));
		return 0;
	}
	send_reply(out, read_reply(out, id, 2 /* read-write, clean */), "READ reply");
	return 0;
}

/* Forks a child that runs `fn(arg)` at normal priority. */
static pid_t spawn(int (*fn)(uint64_t), uint64_t arg)
{
	pid_t pid = fork();
	struct sched_param sp = { .sched_priority = 0 };

	if (pid < 0)
		FAIL("fork: %s", strerror(errno));
	if (pid == 0) {
		close(fd);
		sched_setscheduler(0, SCHED_OTHER, &sp);
		_exit(fn(arg));
	}
	return pid;
}

static int read_page(uint64_t file)
{
	char path[64], page[PAGE];
	int f;

	snprintf(path, sizeof(path), "/wfs/f%llu", (unsigned long long)file);
	f = open(path, O_RDONLY);
	if (f < 0 || pread(f, page, PAGE, 0) != PAGE)
		return 2;
	for (int i = 0; i < PAGE; i++)
		if ((uint8_t)page[i] != pattern(file))
			return 3;
	return 0;
}

static int sync_wfs(uint64_t unused)
{
	int f = open("/wfs", O_RDONLY | O_DIRECTORY);

	(void)unused;
	return f < 0 || syncfs(f) < 0 ? 1 : 0;
}

/* Serves requests until `child` exits; returns its exit status. */
static int serve_until_exit(pid_t child, pid_t victim, uint64_t victim_file, long *accepted)
{
	uint8_t buf[MSG_MAX + 64];
	int status;

	for (;;) {
		ssize_t n;

		if (waitpid(child, &status, WNOHANG) == child)
			return status;
		n = next_request(buf, 20);
		if (n > 0 && killrace_serve(buf, victim, victim_file))
			(*accepted)++;
	}
}

static int mode_killrace(long rounds)
{
	struct sched_param sp = { .sched_priority = 10 };
	cpu_set_t cpu;
	long accepted = 0, ignored = 0;

	if (rounds < 1)
		FAIL("killrace needs at least one round");
	granted = calloc(rounds + 1, 1);
	CPU_ZERO(&cpu);
	CPU_SET(0, &cpu);
	if (sched_setaffinity(0, sizeof(cpu), &cpu) < 0)
		FAIL("sched_setaffinity: %s", strerror(errno));
	if (sched_setscheduler(0, SCHED_FIFO, &sp) < 0)
		FAIL("sched_setscheduler: %s", strerror(errno));
	register_manager();
	for (long r = 1; r <= rounds; r++) {
		pid_t victim = spawn(read_page, r);
		int status;
		long before = accepted;

		status = serve_until_exit(victim, victim, r, &accepted);
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
			FAIL("round %ld: the reader was not killed (status %#x)", r, status);
		if (accepted == before)
			ignored++;
		/* A second reader must find the page: cached if it was granted. */
		status = serve_until_exit(spawn(read_page, r), 0, 0, &accepted);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			FAIL("round %ld: the checker could not read f%ld (status %#x)", r, r, status);
	}
	{
		int status = serve_until_exit(spawn(sync_wfs, 0), 0, 0, &accepted);

		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			FAIL("syncfs of /wfs failed (status %#x)", status);
	}
	printf("wfsfuzz killrace: %ld rounds, %ld dirty grants accepted by killed readers "
	       "(%ld refused), %ld pages written back\n", rounds, accepted, ignored, written_back);
	if (accepted == 0)
		FAIL("no dirty grant was ever accepted: the race was not exercised");
	if (written_back < accepted)
		FAIL("%ld dirty grants accepted, only %ld pages written back", accepted, written_back);
	return 0;
}

/*
 * umount: a child writes "dirty" into page 0 of f1; `umount /wfs` then
 * writes it back, and the WRITE is held unanswered while the manager
 * INVALIDATEs that page, as a manager serving another host would. The
 * unmount holds the super block's s_umount while it waits for the WRITE:
 * an INVALIDATE that waited for s_umount would wait for its own caller
 * (until the WRITE timed out and the page was lost). It must answer at
 * once, EAGAIN (the page is on its way out); once the WRITE is answered
 * the unmount finishes, and an INVALIDATE finds nothing.
 */
static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int invalidate_f1(uint32_t *flags)
{
	uint8_t inv[32] = { 0 };
	int rc;

	put64(inv, FILE_BASE + 1);
	put64(inv + 8, 0);
	put32(inv + 16, 1 /* DROP */);
	put32(inv + 20, pool_slots - SCRATCH_SLOTS);
	rc = ioctl(fd, IOC_INVALIDATE, inv);
	*flags = get32(inv + 24);
	return rc < 0 ? -errno : 0;
}

static int write_f1(uint64_t unused)
{
	int f = open("/wfs/f1", O_RDWR);

	(void)unused;
	return f < 0 || pwrite(f, "dirty", 5, 0) != 5 ? 1 : 0;
}

static int umount_wfs(uint64_t unused)
{
	(void)unused;
	execlp("umount", "umount", "/wfs", (char *)NULL);
	return 127;
}

static int mode_umount(void)
{
	uint8_t buf[MSG_MAX + 64], out[MSG_MAX];
	uint8_t held[MSG_MAX + 64];
	pid_t um;
	int status, rc;
	uint32_t flags;
	double t;

	register_manager();
	/* Serve everything but the WRITE of f1, which is held: the flusher
	 * may send it before the unmount, which then waits for it too. */
	pid_t writer = spawn(write_f1, 0);
	int have_write = 0;

	um = 0;
	for (t = now_s(); !(have_write && um);) {
		ssize_t n = next_request(buf, 20);

		if (n > 0 && get16(buf + 4) == OP_WRITE && !have_write) {
			memcpy(held, buf, n);
			have_write = 1;
		} else if (n > 0) {
			send_reply(out, answer(buf, out), "correct reply");
		}
		if (writer && waitpid(writer, &status, WNOHANG) == writer) {
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
				FAIL("writing f1 failed (status %#x)", status);
			writer = 0;
			um = spawn(umount_wfs, 0);
		}
		if (now_s() - t > 20)
			FAIL("no WRITE of the dirty page within 20 s");
	}
	if (memcmp(pool + (size_t)get32(held + HDR + 20) * PAGE, "dirty", 5))
		FAIL("the WRITE does not carry the data written");
	/* Let the unmount reach the point where it waits for the WRITE. */
	usleep(500000);
	if (waitpid(um, &status, WNOHANG) != 0)
		FAIL("umount finished before its WRITE was answered");
	t = now_s();
	rc = invalidate_f1(&flags);
	t = now_s() - t;
	printf("wfsfuzz umount: INVALIDATE during the unmount: %s after %.3f s\n",
	       rc ? strerror(-rc) : "done", t);
	if (t > 2)
		FAIL("INVALIDATE waited %.1f s for the unmount, which waited for it", t);
	if (rc != -EAGAIN)
		FAIL("INVALIDATE during the unmount: %s (flags %#x), expected EAGAIN",
		     rc ? strerror(-rc) : "success", flags);
	header(out, HDR + 4, OP_WRITE, get64(held + 8), 0);
	send_reply(out, HDR + 4, "WRITE reply");
	for (t = now_s();;) {
		ssize_t n;

		if (waitpid(um, &status, WNOHANG) == um)
			break;
		n = next_request(buf, 20);
		if (n > 0)
			send_reply(out, answer(buf, out), "correct reply");
		if (now_s() - t > 20)
			FAIL("umount did not finish within 20 s of its WRITE");
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		FAIL("umount failed (status %#x)", status);
	rc = invalidate_f1(&flags);
	if (rc != 0 || flags != 0)
		FAIL("INVALIDATE after the unmount: %s, flags %#x; expected nothing there",
		     rc ? strerror(-rc) : "ok", flags);
	printf("wfsfuzz umount: unmounted; the page is gone\n");
	return 0;
}

/*
 * hardening: the pool mapping is marked do-not-copy, do-not-expand and
 * do-not-dump (smaps "dc de dd"); a forked child does not have it (a
 * touch is SIGSEGV); mremap cannot grow it. A session fills the whole
 * pool with a pattern and ends; the next session's pool is all zeros.
 */
static int mode_hardening(void)
{
	char line[512], want[64];
	int found = 0, status;
	FILE *f;
	pid_t pid;
	size_t len;

	/* A REGISTER whose answer cannot be written back (a read-only
	 * buffer) fails with EFAULT and ends the session it opened, as a
	 * close would: the same file then registers again. */
	{
		int f2 = open("/dev/wfs", O_RDWR);
		uint8_t *ro = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (f2 < 0 || ro == MAP_FAILED)
			FAIL("open or mmap: %s", strerror(errno));
		put32(ro, 0x57465331);
		put32(ro + 4, ABI_VERSION);
		memcpy(reg, ro, sizeof(reg));
		if (mprotect(ro, PAGE, PROT_READ))
			FAIL("mprotect: %s", strerror(errno));
		expect_fail(ioctl(f2, IOC_REGISTER, ro), EFAULT, EFAULT, "REGISTER with a read-only buffer");
		if (ioctl(f2, IOC_REGISTER, reg) < 0)
			FAIL("REGISTER after a failed one: %s", strerror(errno));
		close(f2);
		munmap(ro, PAGE);
	}
	register_manager();
	len = (size_t)pool_slots * PAGE;
	snprintf(want, sizeof(want), "%lx-", (unsigned long)pool);
	f = fopen("/proc/self/smaps", "r");
	if (!f)
		FAIL("smaps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, want, strlen(want)))
			found = 1;
		else if (found == 1 && !strncmp(line, "VmFlags:", 8)) {
			if (!strstr(line, " dc") || !strstr(line, " de") || !strstr(line, " dd") ||
			    !strstr(line, " io"))
				FAIL("pool mapping flags: %s", line);
			found = 2;
		}
	}
	fclose(f);
	if (found != 2)
		FAIL("pool mapping not found in smaps");
	/* VM_IO: madvise cannot make the pool inheritable again, and
	 * get_user_pages cannot reach it: /proc/PID/mem (as a debugger or
	 * another process would read it) gets EIO. */
	expect_fail(madvise(pool, len, MADV_DOFORK), EINVAL, EINVAL, "MADV_DOFORK on the pool");
	{
		uint8_t tmp[16];
		int mem = open("/proc/self/mem", O_RDONLY);

		if (mem < 0)
			FAIL("/proc/self/mem: %s", strerror(errno));
		expect_fail(pread(mem, tmp, sizeof(tmp), (off_t)(uintptr_t)pool), EIO, EIO,
			    "/proc/self/mem read of the pool");
		close(mem);
	}
	pid = fork();
	if (pid == 0) {
		signal(SIGSEGV, SIG_DFL);
		*(volatile uint8_t *)pool = 1;
		_exit(0);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFSIGNALED(status) || WTERMSIG(status) != SIGSEGV)
		FAIL("a forked child could touch the pool (status %#x)", status);
	if (mremap(pool, len, len + PAGE, 0) != MAP_FAILED)
		FAIL("mremap grew the pool mapping");
	memset(pool, 0xa5, len);
	munmap(pool, len);
	close(fd);
	register_manager();
	for (size_t i = 0; i < len; i++)
		if (pool[i] != 0)
			FAIL("the new session's pool holds %#x at %zu: left from the last session", pool[i], i);
	printf("wfsfuzz hardening: pool is dc/de/dd/io, not inherited, not growable, out of GUP's reach, cleared between sessions\n");
	return 0;
}

/*
 * refault: the answer to the IVY race (two hosts upgrade one page; the
 * loser's copy is stale). A child maps f1 shared and reads it: READ,
 * granted read-only, bytes 'a'. It writes one byte through the mapping:
 * the UPGRADE is answered "refault", as if another host had written the
 * page meanwhile (its bytes are 'b' now). The kernel must drop the stale
 * copy and fault the page in again: a second READ ('b', read-only), a
 * second UPGRADE (granted), and the write lands on 'b'. The same through
 * write(2) on f2, and with a first touch that is a write (f3: the page is
 * read in by the write fault itself). Each page is then written back: 'b'
 * with the byte.
 */
#define REFAULT_FILES 3
static int refault_reads[REFAULT_FILES + 1], refault_upgrades[REFAULT_FILES + 1];
static int refault_written[REFAULT_FILES + 1];
static uint8_t refault_bytes[REFAULT_FILES + 1] = { 0, 'a', 'a', 'a' };

static void refault_serve(const uint8_t *buf)
{
	uint8_t out[MSG_MAX];
	uint16_t op = get16(buf + 4);
	uint64_t id = get64(buf + 8), file = get64(buf + HDR) - FILE_BASE;
	uint32_t slot = get32(buf + HDR + 20);

	if (op != OP_READ && op != OP_UPGRADE && op != OP_WRITE) {
		send_reply(out, answer(buf, out), "correct reply");
		return;
	}
	if (file < 1 || file > REFAULT_FILES || get64(buf + HDR + 8) != 0)
		FAIL("op %u of f%llu page %llu", op, (unsigned long long)file,
		     (unsigned long long)get64(buf + HDR + 8));
	if (op != OP_UPGRADE && slot >= pool_slots - SCRATCH_SLOTS)
		FAIL("kernel lent slot %u of %u", slot, pool_slots);
	if (op == OP_READ) {
		refault_reads[file]++;
		memset(pool + (size_t)slot * PAGE, refault_bytes[file], PAGE);
		send_reply(out, read_reply(out, id, 1 /* read-only */), "READ reply");
	} else if (op == OP_UPGRADE) {
		header(out, HDR + 8, op, id, 0);
		if (++refault_upgrades[file] == 1) {
			/* Another host wrote the page: this copy is stale. */
			refault_bytes[file] = 'b';
			put32(out + HDR + 4, 4 /* refault */);
		} else {
			put32(out + HDR + 4, 2 /* read-write */);
		}
		send_reply(out, HDR + 8, "UPGRADE reply");
	} else {
		const uint8_t *page = pool + (size_t)slot * PAGE;

		for (int i = 0; i < PAGE; i++)
			if (page[i] != (i == 1 ? 'w' : 'b'))
				FAIL("WRITE of f%llu carries %#x at %d", (unsigned long long)file, page[i], i);
		refault_written[file]++;
		header(out, HDR + 4, op, id, 0);
		send_reply(out, HDR + 4, "WRITE reply");
	}
}

/* Maps f`file` and writes 'w' at byte 1, after reading byte 0 ('a')
 * if `read_first`. */
static int refault_mmap(uint64_t file, int read_first)
{
	char path[32];
	int f;
	volatile uint8_t *p;

	snprintf(path, sizeof(path), "/wfs/f%llu", (unsigned long long)file);
	f = open(path, O_RDWR);
	if (f < 0)
		return 10;
	p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
	if (p == MAP_FAILED)
		return 11;
	if (read_first && p[0] != 'a')
		return 12;
	p[1] = 'w';
	if (p[0] != 'b' || p[1] != 'w' || p[2] != 'b')
		return 13;
	return msync((void *)p, PAGE, MS_SYNC) < 0 ? 14 : 0;
}

static int refault_read_then_store(uint64_t unused)
{
	(void)unused;
	return refault_mmap(1, 1);
}

static int refault_store(uint64_t unused)
{
	(void)unused;
	return refault_mmap(3, 0);
}

static int refault_write(uint64_t unused)
{
	char b[3];
	int f = open("/wfs/f2", O_RDWR);

	(void)unused;
	if (f < 0 || pread(f, b, 1, 0) != 1 || b[0] != 'a')
		return 20;
	if (pwrite(f, "w", 1, 1) != 1)
		return 21;
	if (pread(f, b, 3, 0) != 3 || b[0] != 'b' || b[1] != 'w' || b[2] != 'b')
		return 22;
	return fsync(f) < 0 ? 23 : 0;
}

static int mode_refault(void)
{
	int (*children[REFAULT_FILES])(uint64_t) = { refault_read_then_store, refault_write,
						      refault_store };

	register_manager();
	for (int c = 0; c < REFAULT_FILES; c++) {
		uint8_t buf[MSG_MAX + 64];
		pid_t child = spawn(children[c], 0);
		int status;

		for (;;) {
			if (waitpid(child, &status, WNOHANG) == child)
				break;
			if (next_request(buf, 20) > 0)
				refault_serve(buf);
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			FAIL("f%d: the child failed (status %#x)", c + 1, status);
	}
	for (int f = 1; f <= REFAULT_FILES; f++)
		if (refault_reads[f] != 2 || refault_upgrades[f] != 2 || refault_written[f] != 1)
			FAIL("f%d: %d READs, %d UPGRADEs, %d WRITEs (want 2, 2, 1)", f,
			     refault_reads[f], refault_upgrades[f], refault_written[f]);
	printf("wfsfuzz refault: a stale copy was dropped and read in anew, through mmap (a read, then a\n"
	       "store; a store first) and write(2)\n");
	return 0;
}

