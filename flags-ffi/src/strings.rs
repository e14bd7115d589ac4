//! Text across the boundary: [`FlagsStr`], the pointer-plus-length view the
//! library hands out, and the checks that turn a caller's bytes into `&str`.
//!
//! Not here: who owns the bytes a view points at (the snapshot or context it
//! came from; see `engine` and `context`).

use std::ffi::c_char;
use std::ptr;

use crate::error::{Error, FlagsStatus};

/// A UTF-8 string that is not NUL-terminated: `len` bytes at `ptr`.
///
/// `ptr == NULL` means "absent" (no variant, no rule name); an empty string
/// has a non-NULL `ptr` and `len == 0`. Views returned by the library point
/// into the snapshot they were evaluated under and stay valid until that
/// snapshot is released.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FlagsStr {
    /// First byte; NULL when absent.
    pub ptr: *const c_char,
    /// Number of bytes.
    pub len: usize,
}

impl FlagsStr {
    /// The absent string.
    pub(crate) const NONE: Self = Self {
        ptr: ptr::null(),
        len: 0,
    };

    /// A view of `text`; valid as long as `text` is.
    pub(crate) fn of(text: &str) -> Self {
        Self {
            ptr: text.as_ptr().cast(),
            len: text.len(),
        }
    }

    /// A view of `text`, or the absent string.
    pub(crate) fn of_option(text: Option<&str>) -> Self {
        text.map_or(Self::NONE, Self::of)
    }

    /// The text this view names, checked like any text argument.
    ///
    /// # Safety
    /// As for [`text`].
    pub(crate) unsafe fn read<'a>(self, what: &str) -> Result<&'a str, Error> {
        // SAFETY: the caller upholds `text`'s contract for this view.
        unsafe { text(self.ptr, self.len, what) }
    }
}

/// The caller's text argument `what`: `len` bytes at `ptr`, which must be
/// valid UTF-8. NULL is an error even when `len` is 0.
///
/// # Safety
/// Unless NULL, `ptr` must be readable for `len` bytes that stay unchanged
/// for `'a` (the duration of the call, in every entry point).
pub(crate) unsafe fn text<'a>(
    ptr: *const c_char,
    len: usize,
    what: &str,
) -> Result<&'a str, Error> {
    if ptr.is_null() {
        return Err(Error::null(what));
    }
    if len > isize::MAX as usize {
        return Err(Error::new(
            FlagsStatus::InvalidArgument,
            format!("`{what}` length {len} is larger than any object"),
        ));
    }
    // SAFETY: non-NULL, length fits an object, and the caller promises the
    // bytes are readable and unchanged for 'a.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    std::str::from_utf8(bytes).map_err(|e| {
        Error::new(
            FlagsStatus::InvalidUtf8,
            format!("`{what}` is not valid UTF-8: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_accepts_utf8_and_rejects_null_and_bad_bytes() {
        let good = "héllo";
        // SAFETY: a live string's pointer and length.
        let read = unsafe { text(good.as_ptr().cast(), good.len(), "t") };
        assert_eq!(read.unwrap(), "héllo");
        // SAFETY: NULL is checked before any read.
        let null = unsafe { text(ptr::null(), 0, "t") };
        assert_eq!(null.unwrap_err().status(), FlagsStatus::NullArgument);
        let bad = [b'a', 0xff, b'b'];
        // SAFETY: a live array's pointer and length.
        let bad = unsafe { text(bad.as_ptr().cast(), bad.len(), "t") };
        assert_eq!(bad.unwrap_err().status(), FlagsStatus::InvalidUtf8);
        // SAFETY: the length is rejected before any read.
        let huge = unsafe { text(good.as_ptr().cast(), usize::MAX, "t") };
        assert_eq!(huge.unwrap_err().status(), FlagsStatus::InvalidArgument);
    }

    #[test]
    fn views_round_trip_and_absent_is_null() {
        let view = FlagsStr::of("abc");
        // SAFETY: the view points at a static string.
        assert_eq!(unsafe { view.read("v") }.unwrap(), "abc");
        assert!(FlagsStr::of_option(None).ptr.is_null());
        assert!(!FlagsStr::of("").ptr.is_null());
    }
}
