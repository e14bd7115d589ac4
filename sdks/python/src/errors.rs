//! The one place where failures become the SDK's exceptions (defined in
//! Python, flags/errors.py) and where Python arguments are checked for
//! type with messages that name the argument.
//!
//! Not here: evaluation outcomes (an unknown flag or another type gives
//! the caller's default, or an error inside a `Detail`).

use flags_ffi::{Error, FlagsStatus};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyString, PyType};

static CONFIG_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CONFIG_FILE_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static FLAGS_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CLOSED_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CONFIG_WARNING: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// An instance of the exception class `name` of flags.errors.
fn raise(py: Python<'_>, cell: &PyOnceLock<Py<PyType>>, name: &str, message: String) -> PyErr {
    match cell.import(py, "flags.errors", name) {
        Ok(class) => PyErr::from_type(class.clone(), message),
        Err(import) => import,
    }
}

/// A failed load or update: `ConfigError` (nothing usable),
/// `ConfigFileError` (unreadable file), `FlagsError` otherwise.
pub(crate) fn load_error(py: Python<'_>, error: Error) -> PyErr {
    let message = error.message().to_string();
    match error.status() {
        FlagsStatus::Config => raise(py, &CONFIG_ERROR, "ConfigError", message),
        FlagsStatus::Io => raise(py, &CONFIG_FILE_ERROR, "ConfigFileError", message),
        _ => raise(py, &FLAGS_ERROR, "FlagsError", message),
    }
}

/// `ClosedError`: a closed Flags, Snapshot or Context was used.
pub(crate) fn closed(py: Python<'_>, what: &str) -> PyErr {
    raise(
        py,
        &CLOSED_ERROR,
        "ClosedError",
        format!("this {what} is closed"),
    )
}

/// Warns (`ConfigWarning`) that a load rejected flags, at the caller's line.
pub(crate) fn warn_rejected(py: Python<'_>, problems: &[String]) -> PyResult<()> {
    let category = CONFIG_WARNING.import(py, "flags.errors", "ConfigWarning")?;
    let message = format!("some flags were rejected:\n{}", problems.join("\n"));
    let message = std::ffi::CString::new(message.replace('\0', "?"))?;
    PyErr::warn(py, category, &message, 1)
}

/// `value` as a str, or a TypeError saying `what` must be one. A str that
/// is not valid Unicode (a lone surrogate) is Python's UnicodeEncodeError.
pub(crate) fn text<'a>(value: &'a Bound<'_, PyAny>, what: &str) -> PyResult<&'a str> {
    match value.cast::<PyString>() {
        Ok(text) => text.to_str(),
        Err(_) => Err(not_a(value, what, "a str")),
    }
}

/// A TypeError: `what` must be `wanted`, not the type of `value`.
pub(crate) fn not_a(value: &Bound<'_, PyAny>, what: &str, wanted: &str) -> PyErr {
    let actual = value
        .get_type()
        .name()
        .map_or_else(|_| "?".to_string(), |name| name.to_string());
    PyTypeError::new_err(format!("{what} must be {wanted}, not {actual}"))
}
