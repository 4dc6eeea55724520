//! Compile-time behaviour of `#[tool]`, `roles!` and `tools!`: what compiles, and the exact
//! errors for each mistake. Regenerate `.stderr` files with `TRYBUILD=overwrite` and review the
//! diff; they depend on the compiler version pinned in `rust-toolchain.toml`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("trybuild/pass/*.rs");
    t.compile_fail("trybuild/fail/*.rs");
}
