//! `FlagMetadata`: one evaluation's flag metadata as OFREP and OpenFeature
//! name it (the engine's keys that apply, then the flag's declared ones), a
//! read-only mapping whose Python values are made only when read.
//!
//! The OpenFeature provider hands one to OpenFeature on every evaluation,
//! where building a dict (and a read-only view of it, as OpenFeature asks)
//! cost about as much as the evaluation itself. It is registered as a
//! `collections.abc.Mapping` (flags/__init__.py) and compares equal to a
//! dict with the same entries. Not here: the rest of an evaluation
//! (`detail`).

use std::sync::Arc;

use flags_core::{Evaluation, FlagVersion, KilledBy, Value};
use flags_ffi::FlagsSnapshot;
use pyo3::IntoPyObjectExt;
use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyIterator, PyList, PyString, PyTuple};

use crate::detail::value_object;

/// One entry's value, borrowed from the evaluation.
enum Entry {
    Version(FlagVersion),
    Number(u32),
    Name(&'static str),
    True,
    KilledBy(&'static KilledBy),
    Declared(&'static Value),
}

impl Entry {
    fn object(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self {
            // The 16-hex-digit form the Rust crate and the server print.
            Self::Version(version) => version.to_string().into_py_any(py),
            Self::Number(number) => number.into_py_any(py),
            Self::Name(name) => name.into_py_any(py),
            Self::True => true.into_py_any(py),
            Self::KilledBy(by) => by.to_string().into_py_any(py),
            Self::Declared(value) => value_object(py, value),
        }
    }
}

/// The flag metadata of one evaluation: `flagVersion`, `ruleIndex`,
/// `ruleName`, `bucket` when they apply; `enrolled`, `stale`, `overridden`
/// when true; `arm` when it is not the variant served; `killedBy` for a
/// disabled flag; then the flag's declared `metadata`. Read-only.
#[pyclass(frozen, mapping, module = "flags", freelist = 64)]
pub struct FlagMetadata {
    result: Evaluation<'static>,
    /// What `result` borrows from, kept alive (see `Detail::new`).
    _snapshot: Arc<FlagsSnapshot>,
}

impl FlagMetadata {
    /// The metadata of `result`, which borrows only from `snapshot`.
    pub(crate) fn new(result: Evaluation<'static>, snapshot: Arc<FlagsSnapshot>) -> Self {
        Self {
            result,
            _snapshot: snapshot,
        }
    }

    /// The entries, in the order OFREP lists them.
    fn entries(&self) -> Vec<(&'static str, Entry)> {
        let result = &self.result;
        let mut entries = Vec::with_capacity(8 + result.metadata.len());
        if let Some(version) = result.flag_version {
            entries.push(("flagVersion", Entry::Version(version)));
        }
        if let Some(rule) = result.rule {
            entries.push(("ruleIndex", Entry::Number(rule.index)));
            if let Some(name) = rule.name {
                entries.push(("ruleName", Entry::Name(name)));
            }
        }
        if let Some(bucket) = result.bucket {
            entries.push(("bucket", Entry::Number(bucket)));
        }
        for (key, set) in [
            ("enrolled", result.enrolled),
            ("stale", result.stale),
            ("overridden", result.overridden),
        ] {
            if set {
                entries.push((key, Entry::True));
            }
        }
        if let Some(arm) = result.arm.filter(|arm| Some(*arm) != result.variant) {
            entries.push(("arm", Entry::Name(arm)));
        }
        if let Some(by) = result.killed_by {
            entries.push(("killedBy", Entry::KilledBy(by)));
        }
        for (name, value) in result.metadata.iter() {
            entries.push((name, Entry::Declared(value)));
        }
        entries
    }

    /// The entry named `key`, when `key` is a str naming one.
    fn entry(&self, key: &Bound<'_, PyAny>) -> PyResult<Option<Entry>> {
        let Ok(key) = key.cast::<PyString>() else {
            return Ok(None);
        };
        let key = key.to_str()?;
        Ok(self
            .entries()
            .into_iter()
            .find(|(name, _)| *name == key)
            .map(|(_, entry)| entry))
    }
}

#[pymethods]
impl FlagMetadata {
    fn __len__(&self) -> usize {
        self.entries().len()
    }

    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        match self.entry(key)? {
            Some(entry) => entry.object(py),
            None => Err(PyKeyError::new_err(key.clone().unbind())),
        }
    }

    fn __contains__(&self, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.entry(key)?.is_some())
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyIterator>> {
        self.keys(py)?.as_any().try_iter()
    }

    fn keys<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        PyList::new(py, self.entries().into_iter().map(|(name, _)| name))
    }

    fn values<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let values = self
            .entries()
            .iter()
            .map(|(_, entry)| entry.object(py))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, values)
    }

    fn items<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .entries()
            .iter()
            .map(|(name, entry)| PyTuple::new(py, [name.into_py_any(py)?, entry.object(py)?]))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    #[pyo3(signature = (key, default=None))]
    fn get(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        match self.entry(key)? {
            Some(entry) => entry.object(py),
            None => Ok(default.unwrap_or_else(|| py.None())),
        }
    }

    /// The entries as a new dict.
    fn copy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (name, entry) in self.entries() {
            dict.set_item(name, entry.object(py)?)?;
        }
        Ok(dict)
    }

    /// Equal to any mapping with the same entries, as a dict is.
    fn __eq__(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.copy(py)?.eq(other)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("FlagMetadata({})", self.copy(py)?.repr()?))
    }
}
