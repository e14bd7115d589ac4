//! The one set of status codes every entry point returns, the thread-local
//! last-error message, and the guard each entry point runs its body in.
//!
//! Not here: decoding arguments (`args`) or what an evaluation reports about
//! a flag (`evaluate`); those only produce the [`Error`]s defined here.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What a call did. Zero is success; every other code names one failure.
///
/// `FLAGS_STATUS_FLAG_NOT_FOUND` and `FLAGS_STATUS_TYPE_MISMATCH` are
/// evaluation outcomes (OpenFeature's error codes): they leave the
/// last-error message alone. Every other failure sets it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagsStatus {
    /// Success.
    Ok = 0,
    /// A config was loaded, but some flags in it were rejected: those kept
    /// their previous version (served with `stale`) or, if new, are not
    /// served. The engine was created or updated; the last-error message
    /// lists every problem.
    RejectedFlags = 1,
    /// No flag has that key.
    FlagNotFound = 2,
    /// The flag's values are not of the type asked for.
    TypeMismatch = 3,
    /// A required pointer argument was NULL.
    NullArgument = 4,
    /// A text argument was not valid UTF-8.
    InvalidUtf8 = 5,
    /// An argument was out of range (a type code, nanoseconds, a length).
    InvalidArgument = 6,
    /// The config cannot be used at all (not TOML, wrong `version`, unknown
    /// top-level keys): nothing was created or changed.
    Config = 7,
    /// A config file could not be read.
    Io = 8,
    /// The output array is smaller than the number of results; the count
    /// says how many are needed.
    BufferTooSmall = 9,
    /// The library hit an internal bug. It was contained: the host is
    /// unaffected and the handles remain usable.
    Panic = 10,
}

/// A failure on its way to the caller: a status plus the message that
/// becomes the thread's last error (or, in the Python SDK, an exception).
#[derive(Debug)]
pub struct Error {
    status: FlagsStatus,
    message: String,
}

impl Error {
    pub(crate) fn new(status: FlagsStatus, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn null(what: &str) -> Self {
        Self::new(FlagsStatus::NullArgument, format!("`{what}` is NULL"))
    }

    /// What failed.
    pub fn status(&self) -> FlagsStatus {
        self.status
    }

    /// Why, for a person: every problem of a config, with its position.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Records the message as this thread's last error and returns the status.
    fn record(self) -> FlagsStatus {
        set_last_error(self.message);
        self.status
    }

    fn panicked(payload: &(dyn Any + Send)) -> Self {
        let what = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("unknown panic");
        Self::new(
            FlagsStatus::Panic,
            format!("internal error (please report): {what}"),
        )
    }
}

thread_local! {
    /// The last failure's message, NUL-terminated so C can print it as is.
    static LAST_ERROR: RefCell<Vec<u8>> = RefCell::new(vec![0]);
}

/// Replaces this thread's last-error message.
pub(crate) fn set_last_error(message: String) {
    let mut bytes = message.into_bytes();
    // An interior NUL would cut the message short in C; show it instead.
    for byte in &mut bytes {
        if *byte == 0 {
            *byte = b'?';
        }
    }
    bytes.push(0);
    LAST_ERROR.with(|last| *last.borrow_mut() = bytes);
}

/// Runs the body of an entry point: a failure's message becomes the
/// thread's last error and a panic becomes [`FlagsStatus::Panic`], so no
/// panic ever unwinds into the host.
pub(crate) fn guard(body: impl FnOnce() -> Result<FlagsStatus, Error>) -> FlagsStatus {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(status)) => status,
        Ok(Err(error)) => error.record(),
        Err(payload) => Error::panicked(&*payload).record(),
    }
}

/// The message of the most recent failure on the calling thread, as
/// NUL-terminated UTF-8; `""` if no call on this thread has failed.
///
/// Successful calls do not clear it, so read it right after a call returned
/// a failure. The pointer is owned by the library and stays valid until the
/// next failing call on the same thread; copy the text to keep it.
#[unsafe(no_mangle)]
pub extern "C" fn flags_last_error() -> *const c_char {
    // The buffer lives in this thread's storage until the next failure
    // replaces it, which is exactly the validity the caller is promised.
    LAST_ERROR
        .try_with(|last| last.borrow().as_ptr().cast())
        .unwrap_or(c"thread is exiting".as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last_error() -> String {
        // SAFETY: `flags_last_error` returns a NUL-terminated string owned by
        // this thread, and no call in between replaces it.
        unsafe { CStr::from_ptr(flags_last_error()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn failures_set_the_message_and_successes_keep_it() {
        let status = guard(|| Err(Error::null("engine")));
        assert_eq!(status, FlagsStatus::NullArgument);
        assert_eq!(last_error(), "`engine` is NULL");
        assert_eq!(guard(|| Ok(FlagsStatus::Ok)), FlagsStatus::Ok);
        assert_eq!(last_error(), "`engine` is NULL");
    }

    #[test]
    fn panics_are_contained_and_reported() {
        let status = guard(|| panic!("boom {}", 42));
        assert_eq!(status, FlagsStatus::Panic);
        assert_eq!(last_error(), "internal error (please report): boom 42");
    }

    #[test]
    fn interior_nuls_do_not_truncate_the_message() {
        set_last_error("a\0b".into());
        assert_eq!(last_error(), "a?b");
    }
}
