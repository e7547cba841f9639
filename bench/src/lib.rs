//! `sipgw-bench`: a load generator that speaks real SIP digest as a client, and a softswitch
//! stand-in, for measuring sipgw end to end.
//!
//! Layer: tooling around the gateway (it is not part of the data path). Everything protocol
//! related is reused from the `sipgw` library: digest computation ([`sipgw::digest`]), the
//! credential file ([`sipgw::credentials`]), SIP parsing ([`sipgw::sip`]) and the batched
//! `recvmmsg`/`sendmmsg` rings ([`sipgw::runtime::udp`]), so the UDP paths need no `unsafe`;
//! SIP over TCP is framed by sipgw's stream framer ([`sipgw::framing`]).
//! The one module with `unsafe` is [`xdp_tx`] (the raw flood's AF_XDP UMEM frames, fenced
//! there with `// SAFETY:` comments); the rest of the crate is under the workspace's deny.
//!
//! | module          | what it does                                                         |
//! |-----------------|----------------------------------------------------------------------|
//! | [`cli`]         | the command line (clap derive) and how each command is run           |
//! | [`users`]       | the accounts to register as, from sipgw's credential file             |
//! | [`msg`]         | building requests, reading challenges and responses                   |
//! | [`net`]         | UDP endpoints with batched send and receive                           |
//! | [`link`]        | a load thread's path to the gateway: a UDP socket or TCP connections  |
//! | [`stats`]       | latency histograms, counters, progress lines                          |
//! | [`register`]    | legitimate registrations: challenge → digest → authenticated REGISTER |
//! | [`bruteforce`]  | wrong passwords from many sources until the gateway suspends them     |
//! | [`flood`]       | unauthenticated or banned-source traffic at the highest rate          |
//! | [`mixed`]       | a registration load while a flood or brute force runs                 |
//! | [`softswitch`]  | the softswitch stand-in: answers 200, counts what reaches it           |
//! | [`report`]      | the JSON and human-readable reports                                    |
//!
//! # Bounds
//!
//! Every load loop stops at the first of its count and its duration, and both are capped
//! ([`MAX_DURATION`], [`MAX_COUNT`]): a mistyped command cannot run forever.

pub mod bruteforce;
pub mod cli;
pub mod flood;
pub mod link;
pub mod mixed;
pub mod msg;
pub mod net;
pub mod register;
pub mod report;
pub mod softswitch;
pub mod stats;
pub mod users;
pub mod xdp_tx;

use std::time::Duration;

/// Longest run any command accepts.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);

/// Most requests (registrations, guesses or flood datagrams) any command sends.
pub const MAX_COUNT: u64 = 1_000_000_000;

/// Thread `t`'s share of `count` items spread over `threads` threads (the first ones take one
/// more when it does not divide).
pub fn share(count: u64, threads: usize, t: usize) -> u64 {
    let threads = threads.max(1) as u64;
    count / threads + u64::from((t as u64) < count % threads)
}

/// The `User-Agent` product of every request the generator sends; the class of traffic
/// (`register`, `bruteforce`, `flood`) follows the slash, and the softswitch stand-in counts
/// what reaches it by class.
pub const USER_AGENT: &str = "sipgw-bench";

#[cfg(test)]
mod tests {
    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        for (count, threads) in [(10u64, 3usize), (0, 4), (7, 7), (5, 8), (1_000_001, 2)] {
            let shares: Vec<u64> = (0..threads)
                .map(|t| super::share(count, threads, t))
                .collect();
            assert_eq!(shares.iter().sum::<u64>(), count, "{count} over {threads}");
            let (lo, hi) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
            assert!(hi - lo <= 1, "{shares:?}");
        }
    }
}
