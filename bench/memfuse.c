// SPDX-License-Identifier: GPL-2.0
// memfuse MOUNTPOINT SIZE: a minimal FUSE file system speaking the raw
// /dev/fuse protocol (no libfuse), serving one read-only file "f" of SIZE
// bytes whose byte at offset o is (o / 4096) & 0xff. It is the FUSE peer
// of `make bench`: a page fault on /MOUNTPOINT/f that misses the page
// cache costs one FUSE READ to this process, as a fault on /wfs costs one
// READ to wfs-manager. Runs in the foreground until unmounted.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define ROOT 1
#define FILE_INO 2
#define BUF (1 << 20) + 4096

static uint64_t size;
static int fd;

static void reply(uint64_t unique, int err, const void *body, size_t len)
{
	struct fuse_out_header h = { .len = sizeof(h) + (err ? 0 : len), .error = -err, .unique = unique };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)body, err ? 0 : len } };

	if (writev(fd, iov, 2) < 0 && errno != ENOENT)
		perror("memfuse: writev");
}

static void fill_attr(struct fuse_attr *a, uint64_t ino)
{
	memset(a, 0, sizeof(*a));
	a->ino = ino;
	a->nlink = 1;
	a->blksize = 4096;
	if (ino == ROOT) {
		a->mode = S_IFDIR | 0755;
		a->nlink = 2;
	} else {
		a->mode = S_IFREG | 0444;
		a->size = size;
		a->blocks = (size + 511) / 512;
	}
}

int main(int argc, char **argv)
{
	static char buf[BUF], data[BUF];
	char opts[128];

	if (argc != 3) {
		fprintf(stderr, "usage: memfuse MOUNTPOINT SIZE\n");
		return 2;
	}
	size = strtoull(argv[2], NULL, 0);
	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		perror("memfuse: /dev/fuse");
		return 1;
	}
	snprintf(opts, sizeof(opts), "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other", fd);
	if (mount("memfuse", argv[1], "fuse", MS_NOSUID | MS_NODEV, opts) < 0) {
		perror("memfuse: mount");
		return 1;
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		struct fuse_in_header *in = (void *)buf;
		void *arg = buf + sizeof(*in);

		if (n < 0) {
			if (errno == EINTR || errno == ENOENT || errno == EAGAIN)
				continue;
			if (errno == ENODEV)
				return 0; /* unmounted */
			perror("memfuse: read");
			return 1;
		}
		switch (in->opcode) {
		case FUSE_INIT: {
			struct fuse_init_in *ii = arg;
			struct fuse_init_out o = { .major = FUSE_KERNEL_VERSION, .minor = FUSE_KERNEL_MINOR_VERSION,
						   .max_readahead = ii->max_readahead, .max_write = 1 << 20,
						   .max_background = 16, .congestion_threshold = 12,
						   .time_gran = 1, .max_pages = 256 };
			reply(in->unique, 0, &o, sizeof(o));
			break;
		}
		case FUSE_LOOKUP: {
			struct fuse_entry_out o;

			if (in->nodeid != ROOT || strcmp(arg, "f") != 0) {
				reply(in->unique, ENOENT, NULL, 0);
				break;
			}
			memset(&o, 0, sizeof(o));
			o.nodeid = FILE_INO;
			o.attr_valid = o.entry_valid = 3600;
			fill_attr(&o.attr, FILE_INO);
			reply(in->unique, 0, &o, sizeof(o));
			break;
		}
		case FUSE_GETATTR: {
			struct fuse_attr_out o;

			memset(&o, 0, sizeof(o));
			o.attr_valid = 3600;
			fill_attr(&o.attr, in->nodeid);
			reply(in->unique, 0, &o, sizeof(o));
			break;
		}
		case FUSE_OPEN:
		case FUSE_OPENDIR: {
			struct fuse_open_out o = { .fh = 1, .open_flags = FOPEN_KEEP_CACHE };

			reply(in->unique, 0, &o, sizeof(o));
			break;
		}
		case FUSE_READ: {
			struct fuse_read_in *r = arg;
			uint64_t off = r->offset, len = r->size, i;

			if (off >= size)
				len = 0;
			else if (len > size - off)
				len = size - off;
			if (len > sizeof(data))
				len = sizeof(data);
			for (i = 0; i < len; i++)
				data[i] = (char)(((off + i) / 4096) & 0xff);
			reply(in->unique, 0, data, len);
			break;
		}
		case FUSE_READDIR:
			reply(in->unique, 0, NULL, 0); /* an empty listing */
			break;
		case FUSE_STATFS: {
			struct fuse_statfs_out o;

			memset(&o, 0, sizeof(o));
			o.st.bsize = o.st.frsize = 4096;
			o.st.namelen = 255;
			reply(in->unique, 0, &o, sizeof(o));
			break;
		}
		case FUSE_RELEASE:
		case FUSE_RELEASEDIR:
		case FUSE_FLUSH:
			reply(in->unique, 0, NULL, 0);
			break;
		case FUSE_FORGET:
		case FUSE_BATCH_FORGET:
		case FUSE_INTERRUPT:
			break; /* no reply */
		case FUSE_DESTROY:
			reply(in->unique, 0, NULL, 0);
			return 0;
		default:
			reply(in->unique, ENOSYS, NULL, 0);
		}
	}
}
