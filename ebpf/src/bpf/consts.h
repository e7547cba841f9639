/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/* consts.h: sizes of the maps; each can be overridden at build time (-D). */
#ifndef SIPGW_CONSTS_H
#define SIPGW_CONSTS_H

#ifndef SIPGW_MAX_BANS
#define SIPGW_MAX_BANS 262144 /* ban map entries (LRU: the oldest go first when full) */
#endif
#ifndef SIPGW_MAX_BAN_PREFIXES
#define SIPGW_MAX_BAN_PREFIXES 65536 /* banned networks (LPM trie, not LRU) */
#endif
#ifndef SIPGW_MAX_FLOOD_SOURCES
#define SIPGW_MAX_FLOOD_SOURCES 65536 /* flood-guard buckets per CPU (LRU) */
#endif
#ifndef SIPGW_MAX_QUEUES
#define SIPGW_MAX_QUEUES 64 /* AF_XDP sockets, one per RX queue */
#endif
#ifndef SIPGW_MAX_PORTS
#define SIPGW_MAX_PORTS 64 /* SIP ports steered to the gateway */
#endif
#ifndef SIPGW_MAX_WORKERS
#define SIPGW_MAX_WORKERS 64 /* slots of the gateway-counters array */
#endif

#define SIPGW_MAX_VLAN_TAGS 2 /* 802.1Q, or 802.1ad + 802.1Q */
#define SIPGW_MAX_IPV6_EXT 4  /* IPv6 extension headers walked before giving up */
#define SIPGW_NS_PER_SEC 1000000000ULL

#endif /* SIPGW_CONSTS_H */
