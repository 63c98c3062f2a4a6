// SPDX-License-Identifier: GPL-2.0
/*
 * sniff PORT SECONDS MARKER: watches every IPv4 TCP packet this host sends
 * or receives for SECONDS seconds (a packet socket: what a passive
 * observer on the wire sees), and of those to or from PORT counts the
 * packets, their payload bytes and the packets whose payload holds
 * MARKER. Prints one line:
 *   sniff: port PORT packets N payload B marker M
 * Exits 0, or 1 on an error (no packet socket, bad arguments).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static int holds(const unsigned char *p, size_t n, const char *m, size_t mn)
{
	if (mn == 0 || n < mn)
		return 0;
	for (size_t i = 0; i + mn <= n; i++)
		if (p[i] == (unsigned char)m[0] && memcmp(p + i, m, mn) == 0)
			return 1;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: sniff PORT SECONDS MARKER\n");
		return 1;
	}
	int port = atoi(argv[1]);
	double secs = atof(argv[2]);
	const char *marker = argv[3];
	size_t mn = strlen(marker);

	/* Cooked (SOCK_DGRAM): the IP packet, without the link header. */
	int s = socket(AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP));
	if (s < 0) {
		perror("sniff: socket(AF_PACKET)");
		return 1;
	}
	unsigned long packets = 0, payload = 0, marked = 0;
	static unsigned char buf[65536];
	double end = now() + secs;
	for (;;) {
		double left = end - now();
		if (left <= 0)
			break;
		struct pollfd pfd = { .fd = s, .events = POLLIN };
		int r = poll(&pfd, 1, (int)(left * 1000) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			perror("sniff: poll");
			return 1;
		}
		if (r == 0)
			continue;
		ssize_t n = recv(s, buf, sizeof(buf), 0);
		if (n < 0) {
			perror("sniff: recv");
			return 1;
		}
		if ((size_t)n < sizeof(struct iphdr))
			continue;
		const struct iphdr *ip = (const void *)buf;
		size_t ihl = ip->ihl * 4u;
		if (ip->version != 4 || ip->protocol != IPPROTO_TCP || ihl < 20 ||
		    (size_t)n < ihl + sizeof(struct tcphdr))
			continue;
		const struct tcphdr *tcp = (const void *)(buf + ihl);
		if (ntohs(tcp->source) != port && ntohs(tcp->dest) != port)
			continue;
		size_t thl = tcp->doff * 4u;
		size_t total = ntohs(ip->tot_len);
		if (total > (size_t)n)
			total = (size_t)n;
		if (thl < 20 || ihl + thl > total)
			continue;
		size_t len = total - ihl - thl;
		packets++;
		payload += len;
		marked += holds(buf + ihl + thl, len, marker, mn);
	}
	printf("sniff: port %d packets %lu payload %lu marker %lu\n", port, packets, payload,
	       marked);
	return 0;
}
