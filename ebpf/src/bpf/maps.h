/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* maps.h: every map of the program. All are pinned by name (LIBBPF_PIN_BY_NAME) under the pin
 * directory userspace chooses (/sys/fs/bpf/sipgw/<ifname>/ by default), so bans, configuration
 * and counters outlive the process that loaded the program. */
#ifndef SIPGW_MAPS_H
#define SIPGW_MAPS_H

#include "consts.h"
#include "sipgw_shared.h"

/* Banned single addresses -> expiry and reason (the fast path: one hash lookup). Written by
 * sipgw-loader and the gateway. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SIPGW_MAX_BANS);
	__type(key, struct sipgw_addr);
	__type(value, struct sipgw_ban);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bans SEC(".maps");

/* Banned networks (prefixes shorter than one address) -> expiry and reason. Longest-prefix
 * match; not LRU: when full, writes fail (ENOSPC) until expired entries are pruned (userspace
 * does that before giving up). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SIPGW_MAX_BAN_PREFIXES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sipgw_prefix);
	__type(value, struct sipgw_ban);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ban_prefixes SEC(".maps");

/* Per-source token buckets of the flood guard (per CPU: the rate applies on each CPU). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
	__uint(max_entries, SIPGW_MAX_FLOOD_SOURCES);
	__type(key, struct sipgw_addr);
	__type(value, struct sipgw_flood);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flood SEC(".maps");

/* UDP destination ports (host byte order) steered to the gateway. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SIPGW_MAX_PORTS);
	__type(key, __u16);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sip_ports SEC(".maps");

/* Runtime configuration: one entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sipgw_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} config SEC(".maps");

/* The AF_XDP sockets, indexed by RX queue. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, SIPGW_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xsks SEC(".maps");

/* The XDP program's counters. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sipgw_xdp_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} counters SEC(".maps");

/* The gateway's counters, one slot per worker, mmapped by the gateway. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SIPGW_MAX_WORKERS);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct sipgw_gateway_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} gw_counters SEC(".maps");

#endif /* SIPGW_MAPS_H */
