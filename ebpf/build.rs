//! Compiles `src/bpf/sipgw.bpf.c` with clang into a BPF object and generates its libbpf-rs
//! skeleton in `OUT_DIR` (`sipgw.skel.rs`, `sipgw.bpf.o`).

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "src/bpf/sipgw.bpf.c";
const HEADERS: &[&str] = &[
    "src/bpf/consts.h",
    "src/bpf/maps.h",
    "src/bpf/parsing.h",
    "src/bpf/sipgw_shared.h",
];

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    // Debian keeps <asm/types.h> under the multiarch directory; clang -target bpf does not look
    // there by itself.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("CARGO_CFG_TARGET_ARCH is set by cargo");
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    if let Err(e) = SkeletonBuilder::new()
        .source(SRC)
        .obj(out.join("sipgw.bpf.o"))
        .clang_args(["-O2", "-g", "-Wall", "-Werror", "-I", &multiarch])
        .build_and_generate(out.join("sipgw.skel.rs"))
    {
        panic!(
            "building the XDP program {SRC} failed: {e:#}\n\
             (it needs clang and the kernel headers: run scripts/install-deps as root)"
        );
    }
    println!("cargo:rerun-if-changed={SRC}");
    for h in HEADERS {
        println!("cargo:rerun-if-changed={h}");
    }
}
