/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* parsing.h: header parsers in the style of xdp-tools' parsing_helpers.h. Each helper checks its
 * own bounds against data_end before reading, advances the cursor and returns the next protocol
 * (host byte order) or -1 when the header is truncated or malformed. */
#ifndef SIPGW_PARSING_H
#define SIPGW_PARSING_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "consts.h"
#include "sipgw_shared.h"

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif
#define IP_MF_OFFSET 0x3fff /* More Fragments flag and fragment offset */

struct hdr_cursor {
	void *pos;
};

struct vlan_hdr {
	__be16 tci;
	__be16 encapsulated_proto;
};

/* Ethernet plus up to SIPGW_MAX_VLAN_TAGS tags; *tags says how many were skipped. */
static __always_inline int parse_ethhdr(struct hdr_cursor *c, void *data_end, int *tags)
{
	struct ethhdr *eth = c->pos;
	if ((void *)(eth + 1) > data_end)
		return -1;
	c->pos = eth + 1;
	__u16 proto = bpf_ntohs(eth->h_proto);
	*tags = 0;
#pragma unroll
	for (int i = 0; i < SIPGW_MAX_VLAN_TAGS; i++) {
		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		struct vlan_hdr *vlh = c->pos;
		if ((void *)(vlh + 1) > data_end)
			return -1;
		c->pos = vlh + 1;
		proto = bpf_ntohs(vlh->encapsulated_proto);
		*tags += 1;
	}
	return proto;
}

static __always_inline void addr_from_ipv4(struct sipgw_addr *a, __be32 saddr)
{
	__builtin_memset(a, 0, sizeof(*a));
	a->addr[10] = 0xff;
	a->addr[11] = 0xff;
	__builtin_memcpy(&a->addr[12], &saddr, 4);
}

/* IPv4 with options. *fragment is set for any fragment (first or not); *l3_end is where the
 * datagram ends by its total length. As in the kernel's ip_rcv: a total length beyond the frame
 * is malformed, one short of it leaves link-layer padding after the datagram. */
static __always_inline int parse_iphdr(struct hdr_cursor *c, void *data_end, struct sipgw_addr *src,
				       int *fragment, void **l3_end)
{
	struct iphdr *iph = c->pos;
	if ((void *)(iph + 1) > data_end)
		return -1;
	if (iph->version != 4 || iph->ihl < 5)
		return -1;
	__u32 hlen = iph->ihl * 4;
	__u32 tot_len = bpf_ntohs(iph->tot_len);
	if (tot_len < hlen)
		return -1;
	if (c->pos + hlen > data_end)
		return -1;
	if (c->pos + tot_len > data_end)
		return -1;
	*l3_end = c->pos + tot_len;
	c->pos += hlen;
	addr_from_ipv4(src, iph->saddr);
	*fragment = (iph->frag_off & bpf_htons(IP_MF_OFFSET)) != 0;
	return iph->protocol;
}

struct ipv6_ext {
	__u8 nexthdr;
	__u8 hdrlen;
};

/* IPv6 and up to SIPGW_MAX_IPV6_EXT extension headers (hop-by-hop, routing, destination
 * options, fragment, authentication). *l3_end is where the packet ends by its payload length:
 * beyond the frame is malformed (ipv6_rcv drops it), short of it is padding. */
static __always_inline int parse_ip6hdr(struct hdr_cursor *c, void *data_end,
					struct sipgw_addr *src, int *fragment, void **l3_end)
{
	struct ipv6hdr *ip6h = c->pos;
	if ((void *)(ip6h + 1) > data_end)
		return -1;
	if (ip6h->version != 6)
		return -1;
	c->pos = ip6h + 1;
	__u32 plen = bpf_ntohs(ip6h->payload_len);
	if (c->pos + plen > data_end)
		return -1;
	*l3_end = c->pos + plen;
	__builtin_memcpy(src->addr, &ip6h->saddr, 16);
	*fragment = 0;
	__u8 next = ip6h->nexthdr;
#pragma unroll
	for (int i = 0; i < SIPGW_MAX_IPV6_EXT; i++) {
		struct ipv6_ext *ext = c->pos;
		switch (next) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS:
			if ((void *)(ext + 1) > data_end)
				return -1;
			next = ext->nexthdr;
			c->pos += (ext->hdrlen + 1) * 8;
			break;
		case IPPROTO_FRAGMENT:
			if ((void *)(ext + 1) > data_end)
				return -1;
			*fragment = 1;
			next = ext->nexthdr;
			c->pos += 8;
			break;
		case IPPROTO_AH:
			if ((void *)(ext + 1) > data_end)
				return -1;
			next = ext->nexthdr;
			c->pos += (ext->hdrlen + 2) * 4;
			break;
		default:
			return next;
		}
	}
	/* Too many extension headers for us: treat as malformed. */
	return -1;
}

/* UDP: returns the destination port (host order) or -1. As in the kernel's udp_rcv, a length
 * below 8 or beyond the IP datagram (l3_end) is malformed; one short of it is trimmed there. */
static __always_inline int parse_udphdr(struct hdr_cursor *c, void *data_end, void *l3_end)
{
	struct udphdr *h = c->pos;
	if ((void *)(h + 1) > data_end)
		return -1;
	if ((void *)(h + 1) > l3_end)
		return -1;
	__u32 ulen = bpf_ntohs(h->len);
	if (ulen < sizeof(*h))
		return -1;
	if (c->pos + ulen > l3_end)
		return -1;
	c->pos = h + 1;
	return bpf_ntohs(h->dest);
}

/* The destination port of a TCP segment (the first 4 bytes of its header: source and
 * destination port), or -1 when they are not all inside the packet. */
static __always_inline int parse_tcp_dport(struct hdr_cursor *c, void *data_end, void *l3_end)
{
	__u8 *p = c->pos;
	if ((void *)(p + 4) > data_end || (void *)(p + 4) > l3_end)
		return -1;
	return (p[2] << 8) | p[3];
}

#endif /* SIPGW_PARSING_H */
