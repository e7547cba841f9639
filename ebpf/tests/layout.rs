//! The byte layouts the Rust side assumes, checked against the program's BTF (no root needed).

use libbpf_rs::btf::types::Struct;
use libbpf_rs::btf::{Btf, HasSize};
use sipgw_ebpf::{
    Ban, BanPrefix, Layout, SourceKey, XdpConfig, GATEWAY_COUNTERS, OBJECT, XDP_COUNTERS,
};

fn size_of_struct(name: &str) -> usize {
    let btf = Btf::from_raw("sipgw", OBJECT)
        .expect("parse BTF")
        .expect("the object has BTF");
    let s: Struct<'_> = btf.type_by_name(name).expect(name);
    s.size()
}

#[test]
fn encoders_match_the_c_structs() {
    assert_eq!(size_of_struct("sipgw_addr"), SourceKey::SIZE);
    assert_eq!(size_of_struct("sipgw_ban"), Ban::SIZE);
    let p: BanPrefix = "198.18.0.0/24".parse().unwrap();
    assert_eq!(size_of_struct("sipgw_prefix"), p.to_key().len());
    assert_eq!(size_of_struct("sipgw_config"), XdpConfig::SIZE);
}

#[test]
fn xdp_counters_are_named_u64_fields() {
    let l = Layout::of(XDP_COUNTERS).expect("layout");
    assert_eq!(l.size, l.fields.len() * 8);
    let names: Vec<&str> = l.names().collect();
    for n in [
        "packets",
        "passed",
        "redirected",
        "dropped",
        "dropped_banned",
        "dropped_flood",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    for (i, (_, off)) in l.fields.iter().enumerate() {
        assert_eq!(*off, i * 8);
    }
}

#[test]
fn gateway_counters_mirror_the_engine_counters() {
    let l = Layout::of(GATEWAY_COUNTERS).expect("layout");
    let names: Vec<&str> = l.names().collect();
    assert_eq!(
        names,
        sipgw::counters::Counters::NAMES,
        "struct sipgw_gateway_counters in sipgw_shared.h must list sipgw::counters::Counters' \
         fields in the same order"
    );
    assert_eq!(l.size, std::mem::size_of::<sipgw::counters::Counters>());
}

#[test]
fn unknown_struct_is_a_clear_error() {
    let e = Layout::of("no_such_struct").unwrap_err().to_string();
    assert!(e.contains("no_such_struct"), "{e}");
    let e = Layout::of("sipgw_ban").unwrap_err().to_string();
    assert!(e.contains("reason"), "{e}");
}
