//! `Detail` (everything about one evaluation) and the conversion of the
//! engine's values into Python objects.
//!
//! A Detail keeps the evaluation as the engine returned it, with the
//! snapshot it borrows from, and makes each Python object only when its
//! attribute is read: `all()` makes one small object per flag, which is
//! what lets it beat calling the getters one by one. Not here: evaluating
//! (`engine`).

use std::sync::Arc;

use flags_core::{ErrorCode, Evaluation, Reason, Value};
use flags_ffi::FlagsSnapshot;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString};
use pyo3::{IntoPyObject, IntoPyObjectExt};

use crate::flag_metadata::FlagMetadata;

/// One evaluation: the value and variant served, and why.
///
/// `error` is set when `reason` is `Reason.ERROR` (value and variant are
/// then None); `rule_index`/`rule_name` name the deciding rule, `bucket` is
/// the bucket it drew, `enrolled` means log an exposure. `metadata` is the
/// flag's declared metadata (empty when it declares none, or is unknown).
/// A disabled flag without `off_variant` has reason `Reason.DISABLED` and
/// no value: the caller's default applies.
// A free list: `all()` makes one Detail per flag and drops them together,
// so reusing their memory saves an allocation each.
#[pyclass(frozen, module = "flags", freelist = 256)]
pub struct Detail {
    #[pyo3(get)]
    flag: Py<PyString>,
    result: Evaluation<'static>,
    /// What `result` borrows from: immutable, and kept alive by this Arc
    /// for as long as the Detail exists.
    _snapshot: Arc<FlagsSnapshot>,
}

impl Detail {
    pub(crate) fn new(
        flag: Py<PyString>,
        snapshot: &Arc<FlagsSnapshot>,
        result: Evaluation<'_>,
    ) -> Self {
        // SAFETY: `result` borrows only from `snapshot` (never from the
        // context, whose strings evaluation does not keep), and the Arc
        // stored beside it keeps that immutable snapshot alive for as long
        // as `result` exists. Only the lifetime changes.
        let result = unsafe { std::mem::transmute::<Evaluation<'_>, Evaluation<'static>>(result) };
        Self {
            flag,
            result,
            _snapshot: Arc::clone(snapshot),
        }
    }
}

/// What the OpenFeature provider reads of one evaluation: `(value,
/// variant, reason, error, flag_metadata)`, as the Detail getters of those
/// names give them.
pub(crate) type Resolution<'py> = (
    Py<PyAny>,
    Option<&'static str>,
    Py<PyAny>,
    Option<Py<PyAny>>,
    Bound<'py, FlagMetadata>,
);

impl Detail {
    /// The [`Resolution`] of this evaluation, made in one call.
    pub(crate) fn resolution<'py>(&self, py: Python<'py>) -> PyResult<Resolution<'py>> {
        Ok((
            self.value(py)?,
            self.variant(),
            self.reason(py)?,
            self.error(py)?,
            self.flag_metadata(py)?,
        ))
    }
}

/// The members of flags.detail's `Reason` and `ErrorCode`, fetched once.
struct Members {
    reasons: [Py<PyAny>; 6],
    errors: [Py<PyAny>; 2],
}

static MEMBERS: PyOnceLock<Members> = PyOnceLock::new();

fn members(py: Python<'_>) -> PyResult<&Members> {
    MEMBERS.get_or_try_init(py, || {
        let module = py.import("flags.detail")?;
        let (reason, error) = (module.getattr("Reason")?, module.getattr("ErrorCode")?);
        let member = |class: &Bound<'_, PyAny>, name: &str| class.getattr(name).map(Bound::unbind);
        let reasons = [
            Reason::Static,
            Reason::TargetingMatch,
            Reason::Split,
            Reason::Disabled,
            Reason::Default,
            Reason::Error,
        ];
        Ok::<_, PyErr>(Members {
            reasons: reasons
                .map(|r| member(&reason, r.as_str()))
                .try_into_array()?,
            errors: [ErrorCode::FlagNotFound, ErrorCode::TypeMismatch]
                .map(|e| member(&error, e.as_str()))
                .try_into_array()?,
        })
    })
}

/// `[Result<T>; N]` into `Result<[T; N]>`.
trait TryIntoArray<T, const N: usize> {
    fn try_into_array(self) -> PyResult<[T; N]>;
}

impl<T, const N: usize> TryIntoArray<T, N> for [PyResult<T>; N] {
    fn try_into_array(self) -> PyResult<[T; N]> {
        let items = self.into_iter().collect::<PyResult<Vec<T>>>()?;
        Ok(items
            .try_into()
            .unwrap_or_else(|_| unreachable!("N in, N out")))
    }
}

#[pymethods]
impl Detail {
    /// The value served, or None (an error, or disabled without `off_variant`).
    #[getter]
    fn value(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.result.value {
            Some(value) => value_object(py, value),
            None => Ok(py.None()),
        }
    }

    #[getter]
    fn variant(&self) -> Option<&'static str> {
        self.result.variant
    }

    #[getter]
    fn reason(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let index = match self.result.reason {
            Reason::Static => 0,
            Reason::TargetingMatch => 1,
            Reason::Split => 2,
            Reason::Disabled => 3,
            Reason::Default => 4,
            Reason::Error => 5,
        };
        Ok(members(py)?.reasons[index].clone_ref(py))
    }

    #[getter]
    fn error(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let Some(error) = self.result.error else {
            return Ok(None);
        };
        let index = match error {
            ErrorCode::FlagNotFound => 0,
            ErrorCode::TypeMismatch => 1,
        };
        Ok(Some(members(py)?.errors[index].clone_ref(py)))
    }

    #[getter]
    fn rule_index(&self) -> Option<u32> {
        self.result.rule.map(|rule| rule.index)
    }

    #[getter]
    fn rule_name(&self) -> Option<&'static str> {
        self.result.rule.and_then(|rule| rule.name)
    }

    #[getter]
    fn bucket(&self) -> Option<u32> {
        self.result.bucket
    }

    #[getter]
    fn enrolled(&self) -> bool {
        self.result.enrolled
    }

    #[getter]
    fn stale(&self) -> bool {
        self.result.stale
    }

    #[getter]
    fn overridden(&self) -> bool {
        self.result.overridden
    }

    /// The 16-hex-digit form the Rust crate and the server print; None for
    /// an unknown flag.
    #[getter]
    fn flag_version(&self) -> Option<String> {
        self.result.flag_version.map(|version| version.to_string())
    }

    #[getter]
    fn unmet_prerequisite(&self) -> Option<&'static str> {
        self.result.unmet_prerequisite
    }

    /// The flag's declared metadata, as a new dict.
    #[getter]
    fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (name, value) in self.result.metadata.iter() {
            dict.set_item(name, value_object(py, value)?)?;
        }
        Ok(dict)
    }

    /// The flag metadata OFREP and OpenFeature report, as a read-only
    /// mapping (see `FlagMetadata`).
    #[getter]
    fn flag_metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, FlagMetadata>> {
        Bound::new(
            py,
            FlagMetadata::new(self.result, Arc::clone(&self._snapshot)),
        )
    }

    /// Equal when about the same flag with the same outcome, as the
    /// fields of a dataclass compare.
    fn __eq__(&self, py: Python<'_>, other: &Self) -> PyResult<bool> {
        let (mine, theirs) = (self.flag.bind(py), other.flag.bind(py));
        Ok(mine.to_str()? == theirs.to_str()? && self.result == other.result)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "Detail(flag={}, value={}, variant={}, reason={})",
            self.flag.bind(py).repr()?,
            self.value(py)?.bind(py).repr()?,
            self.variant().into_pyobject(py)?.repr()?,
            self.result.reason.as_str(),
        ))
    }
}

/// A flag value as a new Python object (an object flag as a new dict).
pub(crate) fn value_object(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    match value {
        Value::Bool(flag) => flag.into_py_any(py),
        Value::String(text) => (&**text).into_py_any(py),
        Value::Int(number) => number.into_py_any(py),
        Value::Float(number) => number.into_py_any(py),
        Value::Object(object) => json_object(py, object).map(|dict| dict.into_any().unbind()),
    }
}

fn json_object<'py>(
    py: Python<'py>,
    object: &serde_json::Map<String, serde_json::Value>,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (name, value) in object {
        dict.set_item(name, json_value(py, value)?)?;
    }
    Ok(dict)
}

fn json_value(py: Python<'_>, value: &serde_json::Value) -> PyResult<Py<PyAny>> {
    use serde_json::Value as Json;
    match value {
        Json::Null => Ok(py.None()),
        Json::Bool(flag) => flag.into_py_any(py),
        Json::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(int), _) => int.into_py_any(py),
            (None, Some(int)) => int.into_py_any(py),
            _ => number.as_f64().unwrap_or(f64::NAN).into_py_any(py),
        },
        Json::String(text) => text.into_py_any(py),
        Json::Array(items) => {
            let items = items
                .iter()
                .map(|item| json_value(py, item))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_py_any(py)
        }
        Json::Object(object) => json_object(py, object)?.into_py_any(py),
    }
}
