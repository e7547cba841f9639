/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * sipgw_shared.h: the types and constants shared by the XDP program and userspace.
 *
 * Rust reads the counters through the program's BTF (field names, offsets, sizes), never
 * through a hand-written mirror: `sipgw_ebpf::Layout` (ebpf/src/lib.rs) reads them; the tests in
 * ebpf/tests/layout.rs check the sizes the Rust encoders assume and the gateway counters' order
 * against the BTF; `bpftool map dump` prints the same names.
 * Every field is a __u64 or an explicitly padded __u32 so the layout is the same on every ABI.
 */
#ifndef SIPGW_SHARED_H
#define SIPGW_SHARED_H

/* A source address: IPv6, or IPv4 as an IPv4-mapped IPv6 address (::ffff:a.b.c.d).
 * Rust: sipgw_ebpf::SourceKey. */
struct sipgw_addr {
	__u8 addr[16];
};

/* Why a source is banned. Rust mirror: sipgw_ebpf::BanReason (keep the numbers in step). */
enum sipgw_ban_reason {
	SIPGW_BAN_MANUAL = 1,     /* sipgw-loader ban add */
	SIPGW_BAN_SUSPENDED = 2,  /* the gateway suspended the terminal this source used */
	SIPGW_BAN_LOCKOUT = 3,    /* the gateway locked the source out (too many failures) */
	/* 4 is reserved: it was SIPGW_BAN_FLOOD, which nothing produced (the flood guard drops
	 * over-rate packets, it does not ban). Do not reuse it. */
};

/* Key of the `ban_prefixes` LPM trie: a network. `prefixlen` counts the bits of `addr` that
 * must match, in the 16-byte address: an IPv6 /n is n, an IPv4 /n is 96 + n (the ::ffff:0:0/96
 * of the IPv4-mapped form comes first). Bits past `prefixlen` are zero. Single addresses
 * (/32, /128) live in the exact `bans` hash instead. Rust: sipgw_ebpf::BanPrefix. */
struct sipgw_prefix {
	__u32 prefixlen;
	struct sipgw_addr addr;
};

/* Value of the `bans` and `ban_prefixes` maps. */
struct sipgw_ban {
	__u64 expires_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns) nanoseconds; 0 = never expires */
	__u64 created_ns; /* CLOCK_MONOTONIC nanoseconds when the ban was written */
	__u64 dropped;    /* packets dropped because of this ban */
	enum sipgw_ban_reason reason; /* 4 bytes; bpftool prints its name */
	__u32 prefixlen;  /* the key's prefixlen (ban_prefixes: lets the program delete an expired
			   * entry it matched; bans: 128) */
};

/* Bits of sipgw_config.flags. Rust mirror: sipgw_ebpf::config_flags. */
#define SIPGW_F_FLOOD_GUARD (1U << 0)    /* per-source token bucket on the SIP ports */
#define SIPGW_F_BAN_SIP_ONLY (1U << 1)   /* bans drop only SIP-port traffic (default: all) */
#define SIPGW_F_FRAGMENTS_TO_XSK (1U << 2) /* IP fragments go to the AF_XDP sockets too */

/* The single entry of the `config` map, written by sipgw-loader / sipgw before traffic flows. */
struct sipgw_config {
	__u32 flags;
	__u32 flood_rate_pps; /* tokens per second per source (and per CPU) */
	__u32 flood_burst;    /* bucket size in packets */
	__u32 _pad;
	__u64 flood_refill_ns; /* time to refill an empty bucket: flood_burst * 1e9 / flood_rate_pps */
};

/* Value of the `flood` map (per-CPU LRU hash keyed by struct sipgw_addr). */
struct sipgw_flood {
	__u64 tokens; /* in 1e-9 packets: a full bucket holds flood_burst * 1e9 */
	__u64 last_ns;
};

/* The XDP program's counters: one entry of a per-CPU array; `bpftool map dump` prints the
 * names. Each packet increments `packets` and exactly one of `passed`, `redirected`, `dropped`;
 * the others say why. Rust reads the names from BTF. */
struct sipgw_xdp_counters {
	__u64 packets;          /* frames seen */
	__u64 passed;           /* verdict XDP_PASS */
	__u64 redirected;       /* verdict XDP_REDIRECT into an AF_XDP socket */
	__u64 dropped;          /* verdict XDP_DROP */
	__u64 dropped_banned;   /* dropped: source in the ban map */
	__u64 dropped_flood;    /* dropped: source over the flood-guard rate */
	__u64 bans_expired;     /* ban entries found past their expiry (deleted, packet not dropped) */
	__u64 sip;              /* UDP to a SIP port */
	__u64 sip_to_stack;     /* UDP to a SIP port passed to the kernel: no AF_XDP socket on the queue */
	__u64 ipv4;             /* IPv4 packets */
	__u64 ipv6;             /* IPv6 packets */
	__u64 vlan;             /* frames with at least one 802.1Q/802.1ad tag */
	__u64 non_ip;           /* neither IPv4 nor IPv6 (ARP, LLDP, ...) */
	__u64 non_udp;          /* IP but not UDP */
	__u64 udp_other_port;   /* UDP to a port that is not a SIP port */
	__u64 fragments;        /* IP fragments (passed to the stack unless SIPGW_F_FRAGMENTS_TO_XSK) */
	__u64 parse_errors;     /* truncated or malformed headers (passed to the stack) */
};

/* The gateway's own counters: one entry per worker in a BPF_F_MMAPABLE array the workers write
 * in place, so bpftool shows the gateway's decisions live. Same names, same order as the Rust
 * `sipgw::counters::Counters` (checked by a test). */
struct sipgw_gateway_counters {
	__u64 received;
	__u64 malformed;
	__u64 missing_headers;
	__u64 responses_passed;
	__u64 requests_passed;
	__u64 own_acks_absorbed;
	__u64 forwarded_digest;
	__u64 retransmissions;
	__u64 forwarded_address;
	__u64 challenged;
	__u64 stale_nonce;
	__u64 wrong_password;
	__u64 unknown_user;
	__u64 wrong_realm;
	__u64 replayed_nonce;
	__u64 forged_nonce;
	__u64 malformed_credentials;
	__u64 uri_mismatch;
	__u64 suspensions;
	__u64 source_bans;
	__u64 suspended_dropped;
	__u64 banned_dropped;
	__u64 session_retry_exhausted;
	__u64 session_timeout;
	__u64 forbidden_sent;
	__u64 silenced;
	__u64 nonce_evicted;
	__u64 reply_too_large;
	__u64 reply_buffer_too_small;
	__u64 account_protected;
	__u64 known_good_evaluated;
	__u64 untracked_dropped;
	__u64 overload_shed;
	__u64 amplification_dropped;
	__u64 foreign_nonce;
	__u64 invalid_multiple_call_id;
	__u64 invalid_multiple_cseq;
	__u64 invalid_multiple_from;
	__u64 invalid_multiple_to;
	__u64 invalid_multiple_max_forwards;
	__u64 invalid_multiple_content_length;
	__u64 invalid_cseq;
	__u64 invalid_cseq_range;
	__u64 invalid_cseq_method;
	__u64 invalid_max_forwards;
	__u64 invalid_max_forwards_range;
	__u64 invalid_from;
	__u64 invalid_to;
	__u64 invalid_via;
	__u64 invalid_unbracketed_ipv6;
	__u64 invalid_request_uri;
	__u64 invalid_request_uri_headers;
	__u64 invalid_proxy_require;
	__u64 bad_extension;
	__u64 dialog_passed;
	__u64 unproven_failures;
	__u64 known_good_failures;
};

#endif /* SIPGW_SHARED_H */
