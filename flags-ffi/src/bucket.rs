//! The bucketing function itself, so that other languages can check their
//! own implementation (and ours) against the golden vectors of
//! `tests/vectors/bucketing.json` through the C ABI.
//!
//! Not here: anything a flag decides with a bucket (`evaluate`).

use std::ffi::c_char;

use crate::args::write;
use crate::error::{FlagsStatus, guard};
use crate::strings::text;

/// The bucket, in [0, 1 000 000), of `unit` under `salt` (bucketing v1,
/// docs/bucketing.md): what a rollout with that salt compares against its
/// threshold.
///
/// # Safety
/// `salt` and `unit` are readable for their lengths; `bucket` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_bucket(
    salt: *const c_char,
    salt_len: usize,
    unit: *const c_char,
    unit_len: usize,
    bucket: *mut u32,
) -> FlagsStatus {
    guard(|| {
        // SAFETY: the caller's contract on every argument.
        unsafe {
            let (salt, unit) = (text(salt, salt_len, "salt")?, text(unit, unit_len, "unit")?);
            write(
                bucket,
                flags_core::bucket::bucket_for_salt(salt, unit),
                "bucket",
            )?;
        }
        Ok(FlagsStatus::Ok)
    })
}
