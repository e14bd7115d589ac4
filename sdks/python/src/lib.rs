//! `flags._flags`: the compiled half of the Python SDK, a pyo3 extension
//! over the engine's Rust API (flags-ffi's [`FlagsEngine`] and
//! [`FlagsContext`], the same ones the C ABI is made of), so Python gets the
//! answers of the Rust crate at the cost of one method call.
//!
//! - `engine`: `Flags` (load, update, evaluate) and `Snapshot`, with the
//!   getters they share;
//! - `unit`: `Context` (a prepared unit) and plain dicts read in place;
//! - `detail`: `Detail` and the conversion of values to Python objects;
//! - `flag_metadata`: `FlagMetadata`, an evaluation's OFREP metadata as a
//!   read-only mapping;
//! - `errors`: the one place failures become the SDK's exceptions.
//!
//! Not here: anything natural in Python (the exceptions, the `Reason` and
//! `ErrorCode` enums: flags/errors.py, flags/detail.py), or evaluation
//! logic (flags-core).
//!
//! [`FlagsEngine`]: flags_ffi::FlagsEngine
//! [`FlagsContext`]: flags_ffi::FlagsContext

use pyo3::prelude::*;

mod detail;
mod engine;
mod errors;
mod flag_metadata;
mod unit;

/// The bucket in [0, 1 000 000) of `unit` under `salt` (bucketing v1), for
/// checking other implementations against the golden vectors.
#[pyfunction]
fn bucket(salt: &Bound<'_, PyAny>, unit: &Bound<'_, PyAny>) -> PyResult<u32> {
    let salt = errors::text(salt, "salt")?;
    let unit = errors::text(unit, "unit")?;
    Ok(flags_core::bucket::bucket_for_salt(salt, unit))
}

#[pymodule]
fn _flags(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<engine::Getters>()?;
    module.add_class::<engine::Flags>()?;
    module.add_class::<engine::Snapshot>()?;
    module.add_class::<unit::Context>()?;
    module.add_class::<detail::Detail>()?;
    module.add_class::<flag_metadata::FlagMetadata>()?;
    module.add_function(wrap_pyfunction!(bucket, module)?)?;
    // The flag-metadata keys the engine sets itself, from the one list the
    // engine checks declared metadata against.
    let engine_keys =
        pyo3::types::PyFrozenSet::new(module.py(), flags_core::metadata::ENGINE_KEYS)?;
    module.add("ENGINE_METADATA_KEYS", engine_keys)?;
    Ok(())
}
