//! Keeps `include/flags.h` in step with the code: regenerates the header with
//! cbindgen and fails when the committed copy differs, so CI catches a stale
//! header. Run with `FLAGS_BLESS=1` to rewrite the committed copy instead.

use std::path::Path;

#[test]
fn committed_header_matches_the_code() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("cbindgen.toml is valid");
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(crate_dir.join("src/lib.rs"))
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).expect("the header is UTF-8");

    let path = crate_dir.join("include/flags.h");
    if std::env::var_os("FLAGS_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("writing include/flags.h");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/flags.h is out of date with flags-ffi/src; regenerate it with\n  \
         FLAGS_BLESS=1 cargo test -p flags-ffi --test header\nand commit the result"
    );
    // The generated header is the whole ABI: spot-check that cbindgen saw
    // every module, not just lib.rs.
    for name in [
        "flags_abi_version",
        "flags_engine_update",
        "flags_context_set_string_list",
        "flags_eval_detail",
        "flags_bucket",
        "flags_last_error",
        "FLAGS_STATUS_REJECTED_FLAGS",
        "FLAGS_REASON_TARGETING_MATCH",
    ] {
        assert!(generated.contains(name), "header lacks {name}");
    }
}
