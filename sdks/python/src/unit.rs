//! The unit an evaluation is for, in either of its two forms: a `Context`
//! (a prepared [`FlagsContext`], built once and reused: the fast path for
//! a unit evaluated many times) or a plain dict, read in place for one
//! call without building any Python object or copying its strings.
//!
//! A dict's `"targeting_key"` is the targeting key (OpenFeature's
//! `targeting_key`, `attr = "key"` in conditions); every other entry is an
//! attribute: str, int or float, bool, a list (tuple, set) of str, or None
//! (absent). Not here: evaluating (`engine`).

use flags_core::{AttrValue, List, Timestamp};
use flags_ffi::FlagsContext;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyFrozenSet, PyInt, PyList, PySet, PyString, PyTuple};
use smallvec::SmallVec;

use crate::errors::{closed, not_a, text};

/// The key of a dict context that holds the targeting key.
pub(crate) const TARGETING_KEY: &str = "targeting_key";

/// An attribute value as read from Python, borrowing its str.
enum Attr<'a> {
    Absent,
    Str(&'a str),
    Num(f64),
    Bool(bool),
    Strings(Vec<String>),
}

/// Reads the Python value of attribute `name`.
fn attr<'a>(name: &str, value: &'a Bound<'_, PyAny>) -> PyResult<Attr<'a>> {
    if value.is_none() {
        Ok(Attr::Absent)
    } else if let Ok(text) = value.cast::<PyString>() {
        Ok(Attr::Str(text.to_str()?))
    } else if let Ok(flag) = value.cast::<PyBool>() {
        // Before numbers: bool is a subclass of int.
        Ok(Attr::Bool(flag.is_true()))
    } else if value.is_instance_of::<PyInt>() || value.is_instance_of::<PyFloat>() {
        Ok(Attr::Num(value.extract()?))
    } else if value.is_instance_of::<PyList>()
        || value.is_instance_of::<PyTuple>()
        || value.is_instance_of::<PySet>()
        || value.is_instance_of::<PyFrozenSet>()
    {
        let element = format!("element of attribute '{name}'");
        let items = value
            .try_iter()?
            .map(|item| text(&item?, &element).map(str::to_string))
            .collect::<PyResult<_>>()?;
        Ok(Attr::Strings(items))
    } else {
        Err(not_a(
            value,
            &format!("attribute '{name}'"),
            "str, int, float, bool, a list of str or None",
        ))
    }
}

/// Evaluates `body` with the core context that `attrs` (a dict) and `key`
/// describe, borrowing their strings; only list attributes are copied.
pub(crate) fn with_dict<R>(
    attrs: Option<&Bound<'_, PyDict>>,
    key: Option<&Bound<'_, PyAny>>,
    body: impl FnOnce(&flags_core::Context<'_>) -> PyResult<R>,
) -> PyResult<R> {
    // The entries are held here so that the strings borrowed from them
    // outlive the context; lists are read into owned strings first.
    let entries: SmallVec<[(Bound<'_, PyAny>, Bound<'_, PyAny>); 16]> = attrs
        .map(|attrs| attrs.iter().collect())
        .unwrap_or_default();
    let mut parsed = SmallVec::<[(&str, Attr<'_>); 16]>::with_capacity(entries.len());
    for (name, value) in &entries {
        let name = text(name, "attribute name")?;
        let value = if name == TARGETING_KEY {
            Attr::Str(text(value, TARGETING_KEY)?)
        } else {
            attr(name, value)?
        };
        parsed.push((name, value));
    }
    let mut ctx = flags_core::Context::new();
    for (name, value) in &parsed {
        match value {
            Attr::Str(key) if *name == TARGETING_KEY => ctx.set_key(Some(key)),
            Attr::Absent => {}
            Attr::Str(text) => ctx.set(name, *text),
            Attr::Num(number) => ctx.set(name, *number),
            Attr::Bool(flag) => ctx.set(name, *flag),
            Attr::Strings(items) => ctx.set(name, AttrValue::List(List::Strings(items))),
        }
    }
    if let Some(key) = key {
        ctx.set_key(Some(text(key, "key")?));
    }
    body(&ctx)
}

/// A targeting key plus attributes: str, int/float, bool, or a list of str.
///
/// `Context(key="user-1", attrs={"country": "US", "age": 31})`. Setting a
/// name again replaces its value; `None` removes it. `at` fixes the
/// evaluation instant (an aware datetime) instead of reading the clock.
/// Use it as a context manager, or call `close()`, to free it promptly.
/// One context may be read by many threads, but not while being changed.
#[pyclass(module = "flags")]
pub struct Context {
    /// `None` once closed.
    inner: Option<FlagsContext>,
}

impl Context {
    /// The prepared context, unless closed.
    pub(crate) fn prepared(&self, py: Python<'_>) -> PyResult<&FlagsContext> {
        self.inner.as_ref().ok_or_else(|| closed(py, "Context"))
    }

    fn prepared_mut(&mut self, py: Python<'_>) -> PyResult<&mut FlagsContext> {
        self.inner.as_mut().ok_or_else(|| closed(py, "Context"))
    }

    fn set_one(
        &mut self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let name = text(name, "attribute name")?;
        let value = attr(name, value)?;
        let ctx = self.prepared_mut(py)?;
        match value {
            Attr::Absent => ctx.remove(name),
            Attr::Str(text) => ctx.set_string(name, text),
            Attr::Num(number) => ctx.set_number(name, number),
            Attr::Bool(flag) => ctx.set_bool(name, flag),
            Attr::Strings(items) => ctx.set_strings(name, items),
        }
        Ok(())
    }
}

#[pymethods]
impl Context {
    #[new]
    #[pyo3(signature = (key=None, attrs=None, *, at=None))]
    fn new(
        py: Python<'_>,
        key: Option<&Bound<'_, PyAny>>,
        attrs: Option<&Bound<'_, PyAny>>,
        at: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut created = Self {
            inner: Some(FlagsContext::new()),
        };
        if let Some(key) = key {
            created.prepared_mut(py)?.set_key(text(key, "key")?);
        }
        if let Some(attrs) = attrs {
            created.update_all(py, attrs)?;
        }
        if let Some(at) = at {
            created.prepared_mut(py)?.set_instant(Some(instant(at)?));
        }
        Ok(created)
    }

    /// Sets the targeting key (the default bucketing unit).
    fn set_key<'py>(
        mut slf: PyRefMut<'py, Self>,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let py = slf.py();
        slf.prepared_mut(py)?.set_key(text(key, "key")?);
        Ok(slf)
    }

    /// Sets one attribute; `None` removes it.
    fn set<'py>(
        mut slf: PyRefMut<'py, Self>,
        name: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        slf.set_one(name.py(), name, value)?;
        Ok(slf)
    }

    /// Sets every attribute of a mapping.
    fn update<'py>(
        mut slf: PyRefMut<'py, Self>,
        attrs: &Bound<'_, PyAny>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        slf.update_all(attrs.py(), attrs)?;
        Ok(slf)
    }

    /// Evaluates at `at` (an aware datetime); `None` goes back to the clock.
    fn set_instant<'py>(
        mut slf: PyRefMut<'py, Self>,
        at: &Bound<'_, PyAny>,
    ) -> PyResult<PyRefMut<'py, Self>> {
        let at = if at.is_none() {
            None
        } else {
            Some(instant(at)?)
        };
        let py = slf.py();
        slf.prepared_mut(py)?.set_instant(at);
        Ok(slf)
    }

    /// Removes the key, every attribute and the instant.
    fn clear<'py>(mut slf: PyRefMut<'py, Self>) -> PyResult<PyRefMut<'py, Self>> {
        let py = slf.py();
        slf.prepared_mut(py)?.clear();
        Ok(slf)
    }

    /// Frees the prepared context; using the Context afterwards raises
    /// ClosedError.
    fn close(&mut self) {
        self.inner = None;
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&mut self, _exc: &Bound<'_, PyTuple>) {
        self.close();
    }
}

impl Context {
    fn update_all(&mut self, py: Python<'_>, attrs: &Bound<'_, PyAny>) -> PyResult<()> {
        for item in attrs.call_method0("items")?.try_iter()? {
            let (name, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
            self.set_one(py, &name, &value)?;
        }
        Ok(())
    }
}

/// The instant an aware datetime names.
fn instant(at: &Bound<'_, PyAny>) -> PyResult<Timestamp> {
    let py = at.py();
    let datetime = py.import("datetime")?;
    if !at.is_instance(&datetime.getattr("datetime")?)? {
        return Err(not_a(at, "at", "a datetime"));
    }
    if at.call_method0("utcoffset")?.is_none() {
        return Err(PyValueError::new_err(
            "at must be timezone-aware: a local time means different instants",
        ));
    }
    let utc = datetime.getattr("timezone")?.getattr("utc")?;
    let epoch = datetime
        .getattr("datetime")?
        .call1((1970, 1, 1, 0, 0, 0, 0, utc))?;
    let since = at.call_method1("__sub__", (epoch,))?;
    let days: i64 = since.getattr("days")?.extract()?;
    let seconds: i64 = since.getattr("seconds")?.extract()?;
    let micros: u32 = since.getattr("microseconds")?.extract()?;
    Ok(Timestamp::from_unix(days * 86_400 + seconds, micros * 1000))
}
