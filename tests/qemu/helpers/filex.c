// SPDX-License-Identifier: GPL-2.0
// filex: file sizes and I/O from the command line, for the size tests.
//
//   filex FILE STEP...   opens FILE read-write and runs the STEPs in order
//                        on the one open file:
//
//   create, excl         (first step only) opens FILE with O_CREAT, or
//                        O_CREAT | O_EXCL (mode 0644, less the umask)
//   unlink               unlink(2) of FILE (the open file stays open)
//   read                 prints what read(2) from the start finds (up to
//                        4096 bytes; "" for nothing)
//   size                 prints the size fstat(2) says
//   end                  prints the end lseek(2) finds (SEEK_END: the
//                        size this host's kernel has, asking nobody)
//   otrunc               opens FILE again with O_TRUNC (and closes it)
//   truncate N           ftruncate(2) to N bytes
//   pwrite OFF STR       pwrite(2) of STR at OFF
//   append STR           write(2) of STR with O_APPEND set; prints the
//                        offset it landed at
//   appendn N TAG        N times: F_SETLKW a write lock on the whole file,
//                        append "TAG <i>\n" (i from 0, 4 digits), unlock
//   mapget OFF           maps the file (MAP_SHARED, OFF + 1 bytes rounded
//                        up to pages) and prints the byte at OFF, or SIGBUS
//   mapput OFF STR       the same, storing STR at OFF through the mapping
//                        (then msync); prints ok or SIGBUS
//
// Each step prints "ok" (size, append, mapget: their answer) or the
// errno's name (EOPNOTSUPP, EFBIG, EIO, ...). The exit status is 0 if every
// step succeeded, 2 if one failed (and the steps after it did not run).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static sigjmp_buf on_bus;

static void bus(int sig)
{
	(void)sig;
	siglongjmp(on_bus, 1);
}

static const char *ename(int e)
{
	switch (e) {
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case EFBIG: return "EFBIG";
	case EIO: return "EIO";
	case EINVAL: return "EINVAL";
	case EAGAIN: return "EAGAIN";
	case ENOLCK: return "ENOLCK";
	case EROFS: return "EROFS";
	case EEXIST: return "EEXIST";
	case ENOENT: return "ENOENT";
	default: return strerror(e);
	}
}

static long long num(const char *s)
{
	char *end;
	long long v = strtoll(s, &end, 0);

	if (*s == '\0' || *end != '\0' || v < 0) {
		fprintf(stderr, "filex: bad number %s\n", s);
		exit(2);
	}
	return v;
}

static int failed(void)
{
	printf("%s\n", ename(errno));
	return 2;
}

static int whole_lock(int fd, short type)
{
	struct flock l = { .l_type = type, .l_whence = SEEK_SET };

	return fcntl(fd, F_SETLKW, &l);
}

static int append(int fd, const char *s, off_t *at)
{
	int fl = fcntl(fd, F_GETFL);
	ssize_t n;

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_APPEND) < 0)
		return -1;
	n = write(fd, s, strlen(s));
	if (n != (ssize_t)strlen(s)) {
		if (n >= 0)
			errno = EIO;
		return -1;
	}
	*at = lseek(fd, 0, SEEK_CUR) - n;
	return fcntl(fd, F_SETFL, fl);
}

// Maps the page holding OFF and what comes before it; runs the access
// under a SIGBUS handler. Returns 0, 1 on SIGBUS, -1 (errno) otherwise.
static int mapped(int fd, long long off, const char *put, int *byte)
{
	size_t page = sysconf(_SC_PAGESIZE);
	size_t len = ((size_t)off / page + 1) * page;
	volatile int bused = 0;
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return -1;
	signal(SIGBUS, bus);
	if (sigsetjmp(on_bus, 1) == 0) {
		if (put) {
			memcpy(p + off, put, strlen(put));
			if (msync(p, len, MS_SYNC) < 0) {
				munmap(p, len);
				return -1;
			}
		} else {
			*byte = (unsigned char)p[off];
		}
	} else {
		bused = 1;
	}
	signal(SIGBUS, SIG_DFL);
	munmap(p, len);
	return bused;
}

int main(int argc, char **argv)
{
	int fd, i = 2, flags = O_RDWR;

	if (argc < 3) {
		fprintf(stderr, "usage: filex FILE STEP...\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	if (!strcmp(argv[2], "create") || !strcmp(argv[2], "excl")) {
		flags |= O_CREAT | (!strcmp(argv[2], "excl") ? O_EXCL : 0);
		i = 3;
	}
	fd = open(argv[1], flags, 0644);
	if (fd < 0 && i == 3)
		return failed();
	if (fd < 0) {
		fprintf(stderr, "filex: open %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	if (i == 3)
		printf("ok\n");
	for (; i < argc; i++) {
		const char *s = argv[i];
		int need = (!strcmp(s, "size") || !strcmp(s, "end") || !strcmp(s, "otrunc") ||
			    !strcmp(s, "unlink") || !strcmp(s, "read")) ? 0 :
			   (!strcmp(s, "pwrite") || !strcmp(s, "appendn") ||
			    !strcmp(s, "mapput")) ? 2 : 1;

		if (i + need >= argc) {
			fprintf(stderr, "filex: %s needs %d argument(s)\n", s, need);
			return 2;
		}
		if (!strcmp(s, "size")) {
			struct stat st;

			if (fstat(fd, &st) < 0)
				return failed();
			printf("%lld\n", (long long)st.st_size);
		} else if (!strcmp(s, "end")) {
			off_t end = lseek(fd, 0, SEEK_END);

			if (end < 0)
				return failed();
			printf("%lld\n", (long long)end);
		} else if (!strcmp(s, "unlink")) {
			if (unlink(argv[1]) < 0)
				return failed();
			printf("ok\n");
		} else if (!strcmp(s, "read")) {
			char buf[4097];
			ssize_t n = pread(fd, buf, 4096, 0);

			if (n < 0)
				return failed();
			buf[n] = '\0';
			printf("%s\n", buf);
		} else if (!strcmp(s, "otrunc")) {
			int t = open(argv[1], O_WRONLY | O_TRUNC);

			if (t < 0)
				return failed();
			close(t);
			printf("ok\n");
		} else if (!strcmp(s, "truncate")) {
			if (ftruncate(fd, num(argv[i + 1])) < 0)
				return failed();
			printf("ok\n");
		} else if (!strcmp(s, "pwrite")) {
			const char *d = argv[i + 2];

			if (pwrite(fd, d, strlen(d), num(argv[i + 1])) != (ssize_t)strlen(d))
				return failed();
			printf("ok\n");
		} else if (!strcmp(s, "append")) {
			off_t at;

			if (append(fd, argv[i + 1], &at) < 0)
				return failed();
			printf("%lld\n", (long long)at);
		} else if (!strcmp(s, "appendn")) {
			long long n = num(argv[i + 1]), k;
			char line[64];
			off_t at;

			for (k = 0; k < n; k++) {
				snprintf(line, sizeof(line), "%s %04lld\n", argv[i + 2], k);
				if (whole_lock(fd, F_WRLCK) < 0 || append(fd, line, &at) < 0 ||
				    whole_lock(fd, F_UNLCK) < 0)
					return failed();
			}
			printf("ok\n");
		} else if (!strcmp(s, "mapget") || !strcmp(s, "mapput")) {
			int put = !strcmp(s, "mapput"), byte = 0;
			int r = mapped(fd, num(argv[i + 1]), put ? argv[i + 2] : NULL, &byte);

			if (r < 0)
				return failed();
			if (r > 0) {
				printf("SIGBUS\n");
				return 2;
			}
			if (put)
				printf("ok\n");
			else
				printf("%d\n", byte);
		} else {
			fprintf(stderr, "filex: unknown step %s\n", s);
			return 2;
		}
		i += need;
	}
	return 0;
}
