//! The golden bucketing vectors (`tests/vectors/bucketing.json`, computed
//! independently with Python xxhash) through the C ABI's `flags_bucket`, so
//! other languages can trust the function they check themselves against.

use flags_ffi::{FlagsStatus, flags_bucket};
use serde_json::Value as Json;

#[test]
fn every_golden_vector_buckets_the_same_through_the_c_abi() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/vectors/bucketing.json"
    );
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let file: Json = serde_json::from_str(&text).expect("bucketing.json is JSON");
    let vectors = file["vectors"].as_array().expect("`vectors` is an array");
    assert!(vectors.len() > 100, "only {} vectors", vectors.len());
    for v in vectors {
        let (salt, unit) = (
            v["salt"].as_str().expect("salt"),
            v["unit"].as_str().expect("unit"),
        );
        let mut bucket = u32::MAX;
        // SAFETY: live strings and a local output.
        let status = unsafe {
            flags_bucket(
                salt.as_ptr().cast(),
                salt.len(),
                unit.as_ptr().cast(),
                unit.len(),
                &mut bucket,
            )
        };
        assert_eq!(status, FlagsStatus::Ok);
        assert_eq!(
            u64::from(bucket),
            v["bucket"].as_u64().expect("bucket"),
            "{salt:?} {unit:?}"
        );
    }
}
