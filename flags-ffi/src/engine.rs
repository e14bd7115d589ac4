//! The engine handle and the snapshot guards evaluations run under.
//!
//! An engine holds the current snapshot behind an `ArcSwap`: readers take a
//! guard (one reference-count increment, no lock, no allocation) and updates
//! publish a new snapshot atomically, built with the core's per-flag
//! last-known-good merge against the one they replace. A guard keeps its
//! snapshot, and every string view into it, alive until it is released.
//!
//! The same engine is the Rust API of the Python SDK's extension
//! ([`FlagsEngine::load`], [`FlagsEngine::update`], [`FlagsEngine::snapshot`],
//! [`FlagsSnapshot::evaluate`]), so both bindings load and reload alike.
//!
//! Not here: the C entry points' evaluation (`evaluate`) or contexts (`context`).

use std::borrow::Cow;
use std::ffi::c_char;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use flags_core::{
    Context, Diagnostics, Evaluation, NoExplain, Overrides, Snapshot, Timestamp, Value, ValueType,
    compile_merged,
};
use rustc_hash::FxHashMap;

use crate::args::{handle, write};
use crate::error::{Error, FlagsStatus, guard, set_last_error};
use crate::strings::text;

/// An engine: the current snapshot of a config and the means to replace it.
///
/// Create with `flags_engine_from_toml` or `flags_engine_from_file`, free
/// with `flags_engine_free`. Every function taking a `const FlagsEngine *`
/// may be called from any number of threads at once.
pub struct FlagsEngine {
    current: ArcSwap<FlagsSnapshot>,
    /// Serialises updates, so each merge starts from the snapshot the
    /// previous update published and none is lost.
    updating: Mutex<()>,
}

/// An immutable compiled config, as held by a snapshot guard.
///
/// Obtained with `flags_snapshot_acquire`, released with
/// `flags_snapshot_release`; may be shared by any number of threads.
pub struct FlagsSnapshot {
    pub(crate) core: Snapshot,
    /// The JSON text of every object variant, keyed by the address of its
    /// value in `core`: serialised once per load so that evaluating an
    /// object flag allocates nothing. Addresses are stable because `core`
    /// is never modified and lives exactly as long as this map.
    objects: FxHashMap<usize, Box<str>>,
    /// The JSON text of each flag's declared metadata (`{}` when it has
    /// none), by position in file order: serialised once per load too.
    metadata: Box<[Box<str>]>,
}

impl FlagsSnapshot {
    /// Compiles `text` over `previous` (last-known-good per flag), applying
    /// the `FLAGS_OVERRIDE_*` environment. Returns the snapshot and the
    /// problems of the flags it rejected (named in `path` when given); a
    /// config that cannot be used at all is an error.
    fn load(
        text: &str,
        previous: Option<&Self>,
        path: Option<&str>,
    ) -> Result<(Self, Diagnostics), Error> {
        let located = |problems: Diagnostics| match path {
            Some(path) => problems.in_file(path),
            None => problems,
        };
        let merged = compile_merged(text, previous.map(|p| &p.core), &Overrides::from_env())
            .map_err(|problems| Error::new(FlagsStatus::Config, located(problems).to_string()))?;
        let core = merged.snapshot;
        let mut objects = FxHashMap::default();
        for flag in core.flags() {
            for (_, value) in flag.variants() {
                if let Value::Object(object) = value {
                    let json = serde_json::Value::Object(object.clone()).to_string();
                    objects.insert(value as *const Value as usize, json.into_boxed_str());
                }
            }
        }
        let metadata = core
            .flags()
            .map(|flag| {
                // Strings, numbers and booleans under string keys always serialise.
                serde_json::to_string(&flag.metadata())
                    .unwrap_or_default()
                    .into_boxed_str()
            })
            .collect();
        Ok((
            Self {
                core,
                objects,
                metadata,
            },
            located(merged.rejected),
        ))
    }

    /// The compiled config.
    pub fn core(&self) -> &Snapshot {
        &self.core
    }

    /// Evaluates `flag` for `ctx` at `at`: the flag's position in file
    /// order (`None` for an unknown flag) and its evaluation, checked
    /// against `expected` (`None` accepts every type).
    pub fn evaluate<'s>(
        &'s self,
        flag: &str,
        ctx: &Context<'_>,
        at: Timestamp,
        expected: Option<ValueType>,
    ) -> (Option<usize>, Evaluation<'s>) {
        let position = self.core.position(flag);
        let result = position
            .and_then(|p| self.core.explain_at(p, ctx, at, &mut NoExplain))
            .map_or_else(Evaluation::not_found, |(_, result)| result);
        let result = match expected {
            Some(expected) => result.expect_type(expected),
            None => result,
        };
        (position, result)
    }

    /// The JSON text of the metadata of the flag at `position` (file order).
    pub(crate) fn metadata_json(&self, position: usize) -> Option<&str> {
        self.metadata.get(position).map(|json| &**json)
    }

    /// The JSON text of an object value of this snapshot.
    pub(crate) fn object_json(&self, value: &Value) -> Option<&str> {
        self.objects
            .get(&(value as *const Value as usize))
            .map(|json| &**json)
    }
}

/// The Rust API the Python SDK's extension shares with the C ABI.
impl FlagsEngine {
    /// Creates an engine from `source`, applying the `FLAGS_OVERRIDE_*`
    /// environment. Returns it with the problems of the flags it rejected
    /// (empty when the config is fully valid; those flags are not served).
    /// An unreadable file is [`FlagsStatus::Io`], a config that cannot be
    /// used at all [`FlagsStatus::Config`].
    pub fn load(source: Source<'_>) -> Result<(Self, Diagnostics), Error> {
        let (text, path) = source.read()?;
        let (snapshot, rejected) = FlagsSnapshot::load(&text, None, path)?;
        let engine = Self {
            current: ArcSwap::from_pointee(snapshot),
            updating: Mutex::new(()),
        };
        Ok((engine, rejected))
    }

    /// Replaces the snapshot atomically with one compiled from `source`
    /// over the current one (per-flag last-known-good). Returns the
    /// problems of the flags it rejected; errors as for
    /// [`FlagsEngine::load`], and on error nothing changed.
    pub fn update(&self, source: Source<'_>) -> Result<Diagnostics, Error> {
        let (text, path) = source.read()?;
        // A panic while holding the lock leaves nothing half-done (the swap
        // is the last step), so a poisoned lock is safe to take over.
        let _serial = self.updating.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = self.current.load();
        let (next, rejected) = FlagsSnapshot::load(&text, Some(&previous), path)?;
        self.current.store(Arc::new(next));
        Ok(rejected)
    }

    /// The current snapshot, kept alive (and unchanged) while it is held.
    pub fn snapshot(&self) -> Arc<FlagsSnapshot> {
        self.current.load_full()
    }
}

/// Where a config comes from: its text, or a file holding it (a UTF-8
/// path, which problems name).
pub enum Source<'a> {
    /// The text of a `flags.toml`.
    Text(&'a str),
    /// The path of a `flags.toml`.
    File(&'a str),
}

/// The status that reports a load: some flags rejected (their problems
/// become the last error) or none.
fn load_status(rejected: Diagnostics) -> FlagsStatus {
    if rejected.is_empty() {
        FlagsStatus::Ok
    } else {
        set_last_error(rejected.to_string());
        FlagsStatus::RejectedFlags
    }
}

impl Source<'_> {
    /// The text and, for a file, the path that diagnostics name.
    fn read(&self) -> Result<(Cow<'_, str>, Option<&str>), Error> {
        match *self {
            Source::Text(text) => Ok((Cow::Borrowed(text), None)),
            Source::File(path) => std::fs::read_to_string(path)
                .map(|text| (Cow::Owned(text), Some(path)))
                .map_err(|e| Error::new(FlagsStatus::Io, format!("{path}: {e}"))),
        }
    }
}

/// Creates an engine from the source `decode` reads off the caller's
/// arguments, into `*engine` (NULL unless it succeeds).
///
/// # Safety
/// `engine` is NULL or valid for writing one pointer.
unsafe fn create<'a>(
    engine: *mut *mut FlagsEngine,
    decode: impl FnOnce() -> Result<Source<'a>, Error>,
) -> Result<FlagsStatus, Error> {
    // SAFETY: the caller's contract on `engine`. NULL goes out first, so the
    // output is defined whatever fails next, bad arguments included.
    unsafe { write(engine, std::ptr::null_mut(), "engine") }?;
    let (created, rejected) = FlagsEngine::load(decode()?)?;
    // SAFETY: checked non-NULL and writable above.
    unsafe { engine.write(Box::into_raw(Box::new(created))) };
    Ok(load_status(rejected))
}

/// Replaces the engine's snapshot with one compiled from `source`.
///
/// # Safety
/// `engine` is NULL or a live engine.
unsafe fn update(engine: *const FlagsEngine, source: Source<'_>) -> Result<FlagsStatus, Error> {
    // SAFETY: the caller's contract on `engine`.
    let engine = unsafe { handle(engine, "engine") }?;
    engine.update(source).map(load_status)
}

/// Creates an engine from the TOML text of a `flags.toml`.
///
/// Writes the new engine to `*engine` on `FLAGS_STATUS_OK` and on
/// `FLAGS_STATUS_REJECTED_FLAGS` (some flags were invalid and are not
/// served: the engine exists and must be freed); writes NULL otherwise.
/// `FLAGS_OVERRIDE_<FLAG_KEY>=variant` environment variables are applied.
///
/// # Safety
/// `toml` is readable for `toml_len` bytes; `engine` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_engine_from_toml(
    toml: *const c_char,
    toml_len: usize,
    engine: *mut *mut FlagsEngine,
) -> FlagsStatus {
    guard(|| {
        // SAFETY: the caller's contract on `engine` and `toml`.
        unsafe { create(engine, || Ok(Source::Text(text(toml, toml_len, "toml")?))) }
    })
}

/// Creates an engine from a `flags.toml` file; `path` is UTF-8, not
/// NUL-terminated. Outputs as for `flags_engine_from_toml`; an unreadable
/// file is `FLAGS_STATUS_IO`.
///
/// # Safety
/// `path` is readable for `path_len` bytes; `engine` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_engine_from_file(
    path: *const c_char,
    path_len: usize,
    engine: *mut *mut FlagsEngine,
) -> FlagsStatus {
    guard(|| {
        // SAFETY: the caller's contract on `engine` and `path`.
        unsafe { create(engine, || Ok(Source::File(text(path, path_len, "path")?))) }
    })
}

/// Replaces the engine's snapshot atomically with one compiled from TOML
/// text, keeping the previous version of every flag whose new definition is
/// invalid (per-flag last-known-good; such flags are served with `stale`).
///
/// Safe while other threads evaluate and update: evaluations under a
/// previously acquired snapshot are unaffected. `FLAGS_STATUS_CONFIG` means
/// the text could not be used at all and nothing changed;
/// `FLAGS_STATUS_REJECTED_FLAGS` means the update was applied but some flags
/// were rejected (listed in the last-error message). Environment overrides
/// are read again.
///
/// # Safety
/// `engine` is a live engine; `toml` is readable for `toml_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_engine_update(
    engine: *const FlagsEngine,
    toml: *const c_char,
    toml_len: usize,
) -> FlagsStatus {
    guard(|| {
        // SAFETY: the caller's contract on `engine` and `toml`.
        unsafe { update(engine, Source::Text(text(toml, toml_len, "toml")?)) }
    })
}

/// `flags_engine_update` with the text read from a file.
///
/// # Safety
/// `engine` is a live engine; `path` is readable for `path_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_engine_update_from_file(
    engine: *const FlagsEngine,
    path: *const c_char,
    path_len: usize,
) -> FlagsStatus {
    guard(|| {
        // SAFETY: the caller's contract on `engine` and `path`.
        unsafe { update(engine, Source::File(text(path, path_len, "path")?)) }
    })
}

/// Frees an engine. NULL is ignored. Snapshots acquired from it stay valid
/// until they are released; no other call may use the engine afterwards.
///
/// # Safety
/// `engine` is NULL or a live engine that no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_engine_free(engine: *mut FlagsEngine) {
    guard(|| {
        if !engine.is_null() {
            // SAFETY: a live engine from `create`'s `Box::into_raw`, freed once.
            drop(unsafe { Box::from_raw(engine) });
        }
        Ok(FlagsStatus::Ok)
    });
}

/// Acquires the engine's current snapshot: every evaluation runs under one.
///
/// Cheap (an atomic increment; no lock, no allocation) and never blocked by
/// updates. The snapshot, and every string view evaluated under it, stays
/// valid until `flags_snapshot_release`; later updates do not change it.
/// Returns NULL (and sets the last error) if `engine` is NULL.
///
/// # Safety
/// `engine` is NULL or a live engine.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_snapshot_acquire(
    engine: *const FlagsEngine,
) -> *const FlagsSnapshot {
    let mut acquired = std::ptr::null();
    guard(|| {
        // SAFETY: the caller's contract on `engine`.
        let engine = unsafe { handle(engine, "engine") }?;
        acquired = Arc::into_raw(engine.snapshot());
        Ok(FlagsStatus::Ok)
    });
    acquired
}

/// Releases a snapshot from `flags_snapshot_acquire`. NULL is ignored.
/// Views obtained under it must not be used afterwards.
///
/// # Safety
/// `snapshot` is NULL or acquired and not yet released.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_snapshot_release(snapshot: *const FlagsSnapshot) {
    guard(|| {
        if !snapshot.is_null() {
            // SAFETY: a pointer from `Arc::into_raw` in `flags_snapshot_acquire`,
            // released once: this gives back the reference it took.
            drop(unsafe { Arc::from_raw(snapshot) });
        }
        Ok(FlagsStatus::Ok)
    });
}

/// The number of flags the snapshot serves (the size `flags_eval_all`
/// needs); 0, with the last error set, if `snapshot` is NULL.
///
/// # Safety
/// `snapshot` is NULL or a live snapshot.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_snapshot_flag_count(snapshot: *const FlagsSnapshot) -> usize {
    let mut count = 0;
    guard(|| {
        // SAFETY: the caller's contract on `snapshot`.
        count = unsafe { handle(snapshot, "snapshot") }?.core.len();
        Ok(FlagsStatus::Ok)
    });
    count
}
