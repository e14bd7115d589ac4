//! Handle and output-pointer arguments: the NULL checks every entry point
//! makes before it touches the caller's memory.
//!
//! Not here: text arguments (`strings`). A pointer that is non-NULL but
//! dangling or of the wrong type cannot be detected; the header makes the
//! caller responsible for those, as every C library does.

use crate::error::Error;

/// The object behind a handle the caller passed as `what`.
///
/// # Safety
/// Unless NULL, `ptr` must come from this library's constructor for `T` and
/// not have been freed; the object must outlive `'a`.
pub(crate) unsafe fn handle<'a, T>(ptr: *const T, what: &str) -> Result<&'a T, Error> {
    // SAFETY: the caller guarantees a non-NULL `ptr` is a live `T`.
    unsafe { ptr.as_ref() }.ok_or_else(|| Error::null(what))
}

/// Like [`handle`], for handles the call modifies.
///
/// # Safety
/// As for [`handle`], and no other reference to the object may be in use
/// during `'a` (the header forbids sharing a handle while modifying it).
pub(crate) unsafe fn handle_mut<'a, T>(ptr: *mut T, what: &str) -> Result<&'a mut T, Error> {
    // SAFETY: the caller guarantees a non-NULL `ptr` is a live, unshared `T`.
    unsafe { ptr.as_mut() }.ok_or_else(|| Error::null(what))
}

/// Writes `value` to the caller's output `what`.
///
/// # Safety
/// Unless NULL, `out` must be valid for writing one `T` (it need not be
/// initialised: the old contents are not read or dropped).
pub(crate) unsafe fn write<T>(out: *mut T, value: T, what: &str) -> Result<(), Error> {
    if out.is_null() {
        return Err(Error::null(what));
    }
    // SAFETY: non-NULL and writable per the caller's contract; `write` does
    // not read or drop the previous contents, which may be uninitialised.
    unsafe { out.write(value) };
    Ok(())
}
