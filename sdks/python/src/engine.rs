//! `Flags` (an engine: load, update, evaluate) and `Snapshot` (one config,
//! fixed, for consistent reads), and the getters both inherit from
//! `_Getters`.
//!
//! Each getter is one call into Rust: it takes the current snapshot (an
//! atomic reference count, no lock), reads the unit in place (see `unit`)
//! and evaluates while holding the GIL, because evaluating takes less time
//! than releasing and re-taking it. Loads and updates, which compile a
//! config and may read a file, release it. Not here: contexts (`unit`) or
//! the shape of a `Detail` (`detail`).

use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwapOption;
use flags_core::{Evaluation, Timestamp, ValueType};
use flags_ffi::{FlagsEngine, FlagsSnapshot, Source};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString, PyTuple, PyType};

use crate::detail::{Detail, Resolution, value_object};
use crate::errors::{closed, load_error, not_a, text, warn_rejected};
use crate::unit::{Context, with_dict};

/// What the getters evaluate against.
enum Served {
    /// An engine's current snapshot, whichever it is at each call.
    Engine(FlagsEngine),
    /// One snapshot, fixed.
    Fixed(Arc<FlagsSnapshot>),
}

/// The evaluation methods shared by Flags (current config) and Snapshot
/// (a fixed one).
///
/// Each takes the unit as `ctx`: a prepared `Context`, or a dict (its
/// `"targeting_key"` entry is the targeting key, the rest attributes), or
/// `key`/`attrs` to describe it inline. Typed getters return `default`
/// when the flag is unknown, of another type, or disabled without an
/// `off_variant` (it then serves no value); `detail` says why.
#[pyclass(frozen, subclass, module = "flags", name = "_Getters")]
pub struct Getters {
    /// `None` once closed.
    served: ArcSwapOption<Served>,
    /// The keys `all()` made last, reused while the snapshot is the same.
    keys: Mutex<Option<FlagKeys>>,
}

/// A snapshot's flag keys as Python strings, in file order: made once per
/// snapshot, they save `all()` making and hashing a string per flag.
struct FlagKeys {
    /// Held so that the snapshot the keys are of is never another one at
    /// the same address.
    snapshot: Arc<FlagsSnapshot>,
    keys: Vec<Py<PyString>>,
}

impl FlagKeys {
    fn new(py: Python<'_>, snapshot: &Arc<FlagsSnapshot>) -> Self {
        let keys = snapshot
            .core()
            .flags()
            .map(|flag| PyString::new(py, flag.key()).unbind());
        Self {
            snapshot: Arc::clone(snapshot),
            keys: keys.collect(),
        }
    }
}

impl Getters {
    fn new(served: Served) -> Self {
        Self {
            served: ArcSwapOption::from_pointee(served),
            keys: Mutex::new(None),
        }
    }

    /// The keys of `snapshot`, from the cache if they are there. Taken out
    /// of it (and given back by the caller), so that a call made meanwhile
    /// on this thread, by a finaliser, never waits for the lock.
    fn take_keys(&self, py: Python<'_>, snapshot: &Arc<FlagsSnapshot>) -> FlagKeys {
        let cached = self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        cached
            .filter(|keys| Arc::ptr_eq(&keys.snapshot, snapshot))
            .unwrap_or_else(|| FlagKeys::new(py, snapshot))
    }

    fn snapshot(&self, py: Python<'_>) -> PyResult<Arc<FlagsSnapshot>> {
        match self.served.load().as_deref() {
            Some(Served::Engine(engine)) => Ok(engine.snapshot()),
            Some(Served::Fixed(snapshot)) => Ok(Arc::clone(snapshot)),
            None => Err(closed(py, "snapshot or Flags")),
        }
    }

    /// Evaluates `flag` for the unit, expecting `expected`, and hands the
    /// result (borrowing the snapshot) to `pick`.
    fn evaluate<R>(
        &self,
        flag: &Bound<'_, PyAny>,
        ctx: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        attrs: Option<&Bound<'_, PyAny>>,
        expected: Option<ValueType>,
        pick: impl FnOnce(&Arc<FlagsSnapshot>, Evaluation<'_>) -> PyResult<R>,
    ) -> PyResult<R> {
        let snapshot = self.snapshot(flag.py())?;
        let flag = text(flag, "flag")?;
        with_unit(ctx, key, attrs, |unit, at| {
            let (_, result) = snapshot.evaluate(flag, unit, at, expected);
            pick(&snapshot, result)
        })
    }
}

/// Runs `body` with the unit the caller described, and the instant to
/// evaluate at.
fn with_unit<R>(
    ctx: Option<&Bound<'_, PyAny>>,
    key: Option<&Bound<'_, PyAny>>,
    attrs: Option<&Bound<'_, PyAny>>,
    body: impl FnOnce(&flags_core::Context<'_>, Timestamp) -> PyResult<R>,
) -> PyResult<R> {
    match ctx {
        Some(ctx) => {
            if let Ok(prepared) = ctx.cast::<Context>() {
                let prepared = prepared.try_borrow()?;
                let unit = prepared.prepared(ctx.py())?;
                body(unit.view(), unit.instant().unwrap_or_else(Timestamp::now))
            } else if let Ok(dict) = ctx.cast::<PyDict>() {
                with_dict(Some(dict), None, |unit| body(unit, Timestamp::now()))
            } else {
                Err(not_a(ctx, "ctx", "a Context or a dict"))
            }
        }
        None => {
            let attrs = match attrs {
                Some(attrs) => Some(match attrs.cast::<PyDict>() {
                    Ok(dict) => dict.clone(),
                    Err(_) => PyDict::from_sequence(&attrs.call_method0("items")?)?,
                }),
                None => None,
            };
            with_dict(attrs.as_ref(), key, |unit| body(unit, Timestamp::now()))
        }
    }
}

static EMPTY_STRING: PyOnceLock<Py<PyString>> = PyOnceLock::new();

/// The empty string, the default of `string()`: made once.
fn empty_string() -> Py<PyAny> {
    Python::attach(|py| {
        let empty = EMPTY_STRING.get_or_init(py, || PyString::new(py, "").unbind());
        empty.clone_ref(py).into_any()
    })
}

#[pymethods]
impl Getters {
    /// The value of a boolean flag, or `default`.
    #[pyo3(signature = (flag, ctx=None, *, key=None, attrs=None, default=false))]
    fn bool(
        &self,
        flag: &Bound<'_, PyAny>,
        ctx: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        attrs: Option<&Bound<'_, PyAny>>,
        default: bool,
    ) -> PyResult<bool> {
        self.evaluate(flag, ctx, key, attrs, Some(ValueType::Bool), |_, result| {
            Ok(result.as_bool().unwrap_or(default))
        })
    }

    /// The value of an integer flag, or `default`.
    #[pyo3(signature = (flag, ctx=None, *, key=None, attrs=None, default=0))]
    fn int(
        &self,
        flag: &Bound<'_, PyAny>,
        ctx: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        attrs: Option<&Bound<'_, PyAny>>,
        default: i64,
    ) -> PyResult<i64> {
        self.evaluate(flag, ctx, key, attrs, Some(ValueType::Int), |_, result| {
            Ok(result.as_int().unwrap_or(default))
        })
    }

    /// The value of a float flag, or `default`.
    #[pyo3(signature = (flag, ctx=None, *, key=None, attrs=None, default=0.0))]
    fn float(
        &self,
        flag: &Bound<'_, PyAny>,
        ctx: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        attrs: Option<&Bound<'_, PyAny>>,
        default: f64,
    ) -> PyResult<f64> {
        self.evaluate(
            flag,
            ctx,
            key,
            attrs,
            Some(ValueType::Float),
            |_, result| Ok(result.as_float().unwrap_or(default)),
        )
    }

    /// The value of a string flag, or `default` (returned as given).
    #[pyo3(signature = (flag, ctx=None, *, key=None, attrs=None, default=Some(empty_string())))]
    fn string(
        &self,
        flag: &Bound<'_, PyAny>,
        ctx: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        attrs: Option<&Bound<'_, PyAny>>,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = flag.py();
        self.evaluate(
            flag,
            ctx,
            key,
            attrs,
            Some(ValueType::String),
            |_, result| {
                Ok(match result.as_str() {
                    Some(value) => PyString::new(py, value).into_any().unbind(),
                    None => default.unwrap_or_else(|| py.None()),
                })
            },
        )
    }

    /// The value of an object flag as a new dict, or `default`.
    #[pyo3(signature = (flag, ctx=None, *, key=None, attrs=None, default=None))]
    fn object(
        &self,
        flag: &Bound<'_, PyAny>,
        ctx: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        attrs: Option<&Bound<'_, PyAny>>,
        default: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let py = flag.py();
        self.evaluate(
            flag,
            ctx,
            key,
            attrs,
            Some(ValueType::Object),
            |_, result| match result.value.filter(|_| result.as_object().is_some()) {
                Some(value) => value_object(py, value),
                None => Ok(default.unwrap_or_else(|| py.None())),
            },
        )
    }

    /// Everything about one evaluation, as a Detail.
    ///
    /// `type` (bool, str, int, float or dict) asks for a value of that
    /// type: another type gives `ErrorCode.TYPE_MISMATCH`.
    #[pyo3(signature = (flag, ctx=None, *, key=None, attrs=None, r#type=None))]
    fn detail(
        &self,
        flag: &Bound<'_, PyAny>,
        ctx: Option<&Bound<'_, PyAny>>,
        key: Option<&Bound<'_, PyAny>>,
        attrs: Option<&Bound<'_, PyAny>>,
        r#type: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Detail> {
        let expected = r#type.map(value_type).transpose()?;
        let name = flag_name(flag)?;
        self.evaluate(flag, ctx, key, attrs, expected, |snapshot, result| {
            Ok(Detail::new(name, snapshot, result))
        })
    }

    /// `detail()`'s answer as the tuple `(value, variant, reason, error,
    /// flag_metadata)`, without making a Detail: the one call the
    /// OpenFeature provider (flags.openfeature) makes per evaluation, where
    /// a Detail and five attribute reads cost more than the evaluation.
    #[pyo3(signature = (flag, ctx=None, *, key=None, attrs=None, r#type=None))]
    fn _resolution<'py>(
        &self,
        flag: &Bound<'py, PyAny>,
        ctx: Option<&Bound<'py, PyAny>>,
        key: Option<&Bound<'py, PyAny>>,
        attrs: Option<&Bound<'py, PyAny>>,
        r#type: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Resolution<'py>> {
        let expected = r#type.map(value_type).transpose()?;
        let name = flag_name(flag)?;
        self.evaluate(flag, ctx, key, attrs, expected, |snapshot, result| {
            Detail::new(name, snapshot, result).resolution(flag.py())
        })
    }

    /// Every flag, in file order, as a dict of key to Detail.
    #[pyo3(signature = (ctx=None, *, key=None, attrs=None))]
    fn all<'py>(
        &self,
        py: Python<'py>,
        ctx: Option<&Bound<'py, PyAny>>,
        key: Option<&Bound<'py, PyAny>>,
        attrs: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let snapshot = self.snapshot(py)?;
        let keys = self.take_keys(py, &snapshot);
        let details = with_unit(ctx, key, attrs, |unit, at| {
            let details = PyDict::new(py);
            let results = snapshot.core().evaluate_all(unit, at);
            for ((_, result), flag) in results.zip(&keys.keys) {
                let detail = Detail::new(flag.clone_ref(py), &snapshot, result);
                details.set_item(flag.bind(py), Bound::new(py, detail)?)?;
            }
            Ok(details)
        });
        *self.keys.lock().unwrap_or_else(PoisonError::into_inner) = Some(keys);
        details
    }
}

/// The flag key a Detail is about: `flag`, which must be a str.
fn flag_name(flag: &Bound<'_, PyAny>) -> PyResult<Py<PyString>> {
    match flag.cast::<PyString>() {
        Ok(name) => Ok(name.clone().unbind()),
        Err(_) => Err(not_a(flag, "flag", "a str")),
    }
}

/// The value type `type=` asks for: bool, str, int, float or dict.
fn value_type(kind: &Bound<'_, PyAny>) -> PyResult<ValueType> {
    let py = kind.py();
    let types = [
        (py.get_type::<PyBool>(), ValueType::Bool),
        (py.get_type::<PyString>(), ValueType::String),
        (py.get_type::<PyInt>(), ValueType::Int),
        (py.get_type::<PyFloat>(), ValueType::Float),
        (py.get_type::<PyDict>(), ValueType::Object),
    ];
    types
        .into_iter()
        .find(|(class, _)| class.is(kind))
        .map(|(_, value_type)| value_type)
        .ok_or_else(|| {
            let shown = kind
                .repr()
                .map_or_else(|_| "?".to_string(), |r| r.to_string());
            PyTypeError::new_err(format!(
                "type must be bool, str, int, float, dict or None, not {shown}"
            ))
        })
}

/// A flags engine: a config, evaluated from any number of threads and
/// updated in place with the per-flag last-known-good merge.
///
/// `FLAGS_OVERRIDE_<FLAG_KEY>=variant` environment variables are applied
/// at every load. `problems` lists what the last load rejected.
#[pyclass(frozen, extends = Getters, module = "flags")]
pub struct Flags {
    problems: Mutex<Vec<String>>,
}

/// `path` (a str or a path-like object) as text.
fn path_text(path: &Bound<'_, PyAny>) -> PyResult<String> {
    let path = path.py().import("os")?.call_method1("fspath", (path,))?;
    text(&path, "path").map(str::to_string)
}

/// Each problem on its own line, as `flags check` prints it.
fn lines(problems: &flags_core::Diagnostics) -> Vec<String> {
    problems.to_string().lines().map(str::to_string).collect()
}

impl Flags {
    fn create<'py>(py: Python<'py>, source: Source<'_>) -> PyResult<Bound<'py, Self>> {
        let (engine, rejected) = py
            .detach(|| FlagsEngine::load(source))
            .map_err(|error| load_error(py, error))?;
        let problems = lines(&rejected);
        if !problems.is_empty() {
            warn_rejected(py, &problems)?;
        }
        let flags =
            PyClassInitializer::from(Getters::new(Served::Engine(engine))).add_subclass(Self {
                problems: Mutex::new(problems),
            });
        Bound::new(py, flags)
    }

    fn update_from(slf: &Bound<'_, Self>, source: Source<'_>) -> PyResult<Vec<String>> {
        let py = slf.py();
        let served = slf.as_super().get().served.load_full();
        let Some(Served::Engine(engine)) = served.as_deref() else {
            return Err(closed(py, "Flags"));
        };
        let rejected = py
            .detach(|| engine.update(source))
            .map_err(|error| load_error(py, error))?;
        let problems = lines(&rejected);
        *slf.get()
            .problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = problems.clone();
        Ok(problems)
    }
}

#[pymethods]
impl Flags {
    /// Loads a flags.toml file. Raises ConfigFileError if it cannot be
    /// read, ConfigError if it cannot be used at all; warns (ConfigWarning)
    /// if some flags were rejected and are not served.
    #[classmethod]
    fn from_file<'py>(
        cls: &Bound<'py, PyType>,
        path: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, Self>> {
        let path = path_text(path)?;
        Self::create(cls.py(), Source::File(&path))
    }

    /// Loads flags.toml text; errors as for `from_file`.
    #[classmethod]
    fn from_toml<'py>(
        cls: &Bound<'py, PyType>,
        text: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, Self>> {
        let text = crate::errors::text(text, "text")?;
        Self::create(cls.py(), Source::Text(text))
    }

    /// What the last load or update rejected, one problem a line
    /// (`file:line:column: ...`); empty when all was valid.
    #[getter]
    fn problems(&self) -> Vec<String> {
        self.problems
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the config with flags.toml text, atomically; flags whose
    /// new definition is invalid keep their previous one (served stale).
    /// Returns the problems (empty when all is valid); raises ConfigError,
    /// changing nothing, if the text cannot be used at all.
    fn update(slf: &Bound<'_, Self>, text: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        let text = crate::errors::text(text, "text")?;
        Self::update_from(slf, Source::Text(text))
    }

    /// `update` with the text of a file.
    fn update_file(slf: &Bound<'_, Self>, path: &Bound<'_, PyAny>) -> PyResult<Vec<String>> {
        let path = path_text(path)?;
        Self::update_from(slf, Source::File(&path))
    }

    /// The current config, fixed: a Snapshot for consistent reads.
    fn snapshot<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, Snapshot>> {
        let py = slf.py();
        let served = slf.as_super().get().served.load();
        let Some(Served::Engine(engine)) = served.as_deref() else {
            return Err(closed(py, "Flags"));
        };
        let fixed = PyClassInitializer::from(Getters::new(Served::Fixed(engine.snapshot())))
            .add_subclass(Snapshot);
        Bound::new(py, fixed)
    }

    /// Frees the engine (once no call is using it). Snapshots taken from
    /// it stay usable until they are closed.
    fn close(slf: &Bound<'_, Self>) {
        slf.as_super().get().served.store(None);
    }

    fn __enter__<'py>(slf: &Bound<'py, Self>) -> Bound<'py, Self> {
        slf.clone()
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(slf: &Bound<'_, Self>, _exc: &Bound<'_, PyTuple>) {
        Self::close(slf);
    }
}

/// One config as it was when taken: every read through it is consistent,
/// whatever updates happen meanwhile. From `Flags.snapshot()`; use it as a
/// context manager (or call `close()`) to release it promptly.
#[pyclass(frozen, extends = Getters, module = "flags")]
pub struct Snapshot;

#[pymethods]
impl Snapshot {
    /// Releases the snapshot (once no call is using it).
    fn close(slf: &Bound<'_, Self>) {
        slf.as_super().get().served.store(None);
    }

    fn __enter__<'py>(slf: &Bound<'py, Self>) -> Bound<'py, Self> {
        slf.clone()
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(slf: &Bound<'_, Self>, _exc: &Bound<'_, PyTuple>) {
        Self::close(slf);
    }
}
