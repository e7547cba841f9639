/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sipgw.bpf.c: sipgw's XDP program.
 *
 * For every frame: parse Ethernet (+ up to two VLAN tags), IPv4 or IPv6, UDP. Drop sources in
 * the ban map or inside a banned prefix (unless the ban has expired: then delete it and go on);
 * on the SIP ports, drop
 * (in ban scope "sip": banned sources only on the SIP ports, UDP and TCP) sources over the optional flood-guard rate and redirect the rest into the AF_XDP socket of the
 * RX queue (or pass them to the kernel stack when the queue has none). Everything else passes.
 * Every verdict leaves through `out`, which records it in the per-CPU counters.
 */
#include "parsing.h"
#include "maps.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline int ban_expired(struct sipgw_ban *ban)
{
	__u64 expires = ban->expires_ns;
	return expires != 0 && expires <= bpf_ktime_get_ns();
}

/* Look the source up in the exact ban map, then in the prefix trie (longest match first);
 * returns 1 if it is banned now. An expired entry found on the way is deleted and counted;
 * after deleting an expired prefix the trie is asked once more (a shorter, still active prefix
 * of the same source drops this packet too). */
static __always_inline int banned(struct sipgw_addr *src, struct sipgw_xdp_counters *cnt)
{
	struct sipgw_ban *ban = bpf_map_lookup_elem(&bans, src);
	if (ban) {
		if (!ban_expired(ban)) {
			__sync_fetch_and_add(&ban->dropped, 1);
			return 1;
		}
		bpf_map_delete_elem(&bans, src);
		cnt->bans_expired++;
	}
	struct sipgw_prefix key = { .prefixlen = 128 };
	__builtin_memcpy(key.addr.addr, src->addr, sizeof(key.addr.addr));
#pragma unroll
	for (int i = 0; i < 2; i++) {
		ban = bpf_map_lookup_elem(&ban_prefixes, &key);
		if (!ban)
			return 0;
		if (!ban_expired(ban)) {
			__sync_fetch_and_add(&ban->dropped, 1);
			return 1;
		}
		/* The trie ignores the address bits past prefixlen: the source itself names the
		 * entry it matched. */
		struct sipgw_prefix hit = key;
		hit.prefixlen = ban->prefixlen;
		bpf_map_delete_elem(&ban_prefixes, &hit);
		cnt->bans_expired++;
	}
	return 0;
}

/* Token bucket per source; returns 1 if this packet is over the rate. */
static __always_inline int over_rate(struct sipgw_addr *src, struct sipgw_config *cfg)
{
	__u64 now = bpf_ktime_get_ns();
	__u64 cap = (__u64)cfg->flood_burst * SIPGW_NS_PER_SEC;
	struct sipgw_flood *b = bpf_map_lookup_elem(&flood, src);
	if (!b) {
		struct sipgw_flood fresh = { .tokens = cap - SIPGW_NS_PER_SEC, .last_ns = now };
		if (cap < SIPGW_NS_PER_SEC)
			return 1;
		bpf_map_update_elem(&flood, src, &fresh, BPF_ANY);
		return 0;
	}
	__u64 elapsed = now - b->last_ns;
	if (elapsed > cfg->flood_refill_ns)
		elapsed = cfg->flood_refill_ns;
	__u64 tokens = b->tokens + elapsed * cfg->flood_rate_pps;
	if (tokens > cap)
		tokens = cap;
	b->last_ns = now;
	if (tokens < SIPGW_NS_PER_SEC) {
		b->tokens = tokens;
		return 1;
	}
	b->tokens = tokens - SIPGW_NS_PER_SEC;
	return 0;
}

SEC("xdp")
int sipgw_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct hdr_cursor c = { .pos = data };
	struct sipgw_addr src;
	int action = XDP_PASS;
	void *l3_end = data_end;
	int fragment = 0, tags = 0, l4;
	__u32 zero = 0;

	struct sipgw_xdp_counters *cnt = bpf_map_lookup_elem(&counters, &zero);
	struct sipgw_config *cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cnt || !cfg)
		return XDP_PASS; /* cannot happen: arrays always have entry 0 */
	cnt->packets++;

	int proto = parse_ethhdr(&c, data_end, &tags);
	if (tags)
		cnt->vlan++;
	if (proto < 0) {
		cnt->parse_errors++;
		goto out;
	}
	if (proto == ETH_P_IP) {
		cnt->ipv4++;
		l4 = parse_iphdr(&c, data_end, &src, &fragment, &l3_end);
	} else if (proto == ETH_P_IPV6) {
		cnt->ipv6++;
		l4 = parse_ip6hdr(&c, data_end, &src, &fragment, &l3_end);
	} else {
		cnt->non_ip++;
		goto out;
	}
	if (l4 < 0) {
		cnt->parse_errors++;
		goto out;
	}

	int ban_all = !(cfg->flags & SIPGW_F_BAN_SIP_ONLY);
	if (ban_all && banned(&src, cnt)) {
		cnt->dropped_banned++;
		action = XDP_DROP;
		goto out;
	}
	if (fragment) {
		cnt->fragments++;
		if (l4 == IPPROTO_UDP && (cfg->flags & SIPGW_F_FRAGMENTS_TO_XSK))
			goto steer;
		goto out;
	}
	if (l4 != IPPROTO_UDP) {
		cnt->non_udp++;
		/* SIP over TCP and TLS go to the kernel stack, never to a socket; in ban scope "sip"
		 * a banned source's segments to a SIP port (its SYNs first) are dropped here too. */
		if (l4 == IPPROTO_TCP && !ban_all) {
			int tport = parse_tcp_dport(&c, data_end, l3_end);
			__u16 tp = tport;
			if (tport >= 0 && bpf_map_lookup_elem(&sip_ports, &tp) && banned(&src, cnt)) {
				cnt->dropped_banned++;
				action = XDP_DROP;
			}
		}
		goto out;
	}
	int port = parse_udphdr(&c, data_end, l3_end);
	if (port < 0) {
		cnt->parse_errors++;
		goto out;
	}
	__u16 dport = port;
	if (!bpf_map_lookup_elem(&sip_ports, &dport)) {
		cnt->udp_other_port++;
		goto out;
	}
	cnt->sip++;
	if (!ban_all && banned(&src, cnt)) {
		cnt->dropped_banned++;
		action = XDP_DROP;
		goto out;
	}
	if ((cfg->flags & SIPGW_F_FLOOD_GUARD) && over_rate(&src, cfg)) {
		cnt->dropped_flood++;
		action = XDP_DROP;
		goto out;
	}

steer:;
	__u32 queue = ctx->rx_queue_index;
	if (!bpf_map_lookup_elem(&xsks, &queue)) {
		cnt->sip_to_stack++;
		goto out;
	}
	action = bpf_redirect_map(&xsks, queue, XDP_PASS);

out:
	if (action == XDP_DROP)
		cnt->dropped++;
	else if (action == XDP_REDIRECT)
		cnt->redirected++;
	else
		cnt->passed++;
	return action;
}
