//! Compile-time behaviour of `#[tool]`, `roles!` and `tools!`: what compiles, and the exact
//! errors for each mistake. Regenerate `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p mcp-secure-ui` and review the diff; they depend on the
//! compiler version pinned in `rust-toolchain.toml`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("pass/*.rs");
    t.compile_fail("fail/*.rs");
}
