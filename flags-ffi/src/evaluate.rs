//! Evaluation entry points: one typed getter per value type (value or the
//! caller's default), the full detail written into a caller's struct, and
//! every flag at once into a caller's array.
//!
//! All of them evaluate under a snapshot guard with a prepared context, and
//! none allocates or locks: results are views into the snapshot. Not here:
//! how snapshots are published (`engine`) or contexts built (`context`).

use std::ffi::c_char;

use flags_core::{ErrorCode, Evaluation, Reason, Timestamp, Value, ValueType};

use crate::args::{handle, write};
use crate::context::FlagsContext;
use crate::engine::FlagsSnapshot;
use crate::error::{Error, FlagsStatus, guard};
use crate::strings::{FlagsStr, text};

/// A flag's value type. As the `expected` argument of `flags_eval_detail`,
/// `FLAGS_TYPE_ANY` accepts every type; in a detail it means no value was
/// served: an error, or a disabled flag without `off_variant` (reason
/// `FLAGS_REASON_DISABLED`, status OK), whose caller uses its own default.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagsType {
    /// Any type / no value.
    Any = 0,
    /// `bool_value`.
    Bool = 1,
    /// `string_value`.
    String = 2,
    /// `int_value` (64-bit integer; a different type from float).
    Int = 3,
    /// `float_value`.
    Float = 4,
    /// `string_value` holds the object as JSON text.
    Object = 5,
}

/// Why an evaluation served what it served (OpenFeature's reasons).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlagsReason {
    /// The flag has no rules, or an override forced it.
    Static = 0,
    /// A rule served a fixed variant without drawing a bucket.
    TargetingMatch = 1,
    /// The deciding rule drew a bucket: rollout, schedule, split, experiment.
    Split = 2,
    /// The flag is disabled: its `off_variant` is served, or no value at
    /// all (`value_type` is `FLAGS_TYPE_ANY`) when it declares none.
    Disabled = 3,
    /// No rule matched, or a prerequisite was unmet.
    Default = 4,
    /// The evaluation failed; `error` says why.
    Error = 5,
}

/// Everything about one evaluation, written by `flags_eval_detail` and
/// `flags_eval_all` into memory the caller provides.
///
/// Strings are views into the snapshot evaluated under (absent: `ptr` is
/// NULL) and stay valid until that snapshot is released.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FlagsDetail {
    /// The flag key; set by `flags_eval_all`, absent from `flags_eval_detail`
    /// (whose caller passed the key).
    pub flag: FlagsStr,
    /// The variant served; absent on error and when no value was served.
    pub variant: FlagsStr,
    /// The value of a string flag, or the JSON text of an object flag.
    pub string_value: FlagsStr,
    /// The name of the deciding rule, if it has one.
    pub rule_name: FlagsStr,
    /// The first unmet prerequisite, when one sent the flag to its default.
    pub unmet_prerequisite: FlagsStr,
    /// The flag's declared metadata as the JSON text of an object (`{}`
    /// when it declares none); absent for an unknown flag.
    pub metadata_json: FlagsStr,
    /// The value of an integer flag.
    pub int_value: i64,
    /// The value of a float flag.
    pub float_value: f64,
    /// A content hash of the flag's definition; see `has_flag_version`.
    pub flag_version: u64,
    /// Which value field is set; `FLAGS_TYPE_ANY` when no value was served
    /// (an error, or a disabled flag without `off_variant`).
    pub value_type: FlagsType,
    /// Why this value.
    pub reason: FlagsReason,
    /// `FLAGS_STATUS_OK`, or `FLAGS_STATUS_FLAG_NOT_FOUND` /
    /// `FLAGS_STATUS_TYPE_MISMATCH` when `reason` is `FLAGS_REASON_ERROR`.
    pub error: FlagsStatus,
    /// Index (from 0) of the deciding rule; -1 when no rule decided.
    pub rule_index: i32,
    /// The bucket the deciding rule drew, in [0, 1 000 000); -1 if none.
    pub bucket: i32,
    /// The value of a boolean flag.
    pub bool_value: bool,
    /// The unit is enrolled in an experiment: log an exposure.
    pub enrolled: bool,
    /// The flag's new definition was invalid; this is its previous version.
    pub stale: bool,
    /// A `FLAGS_OVERRIDE_*` override forced the variant.
    pub overridden: bool,
    /// Whether `flag_version` is set (it is not for an unknown flag).
    pub has_flag_version: bool,
}

impl FlagsDetail {
    fn new(
        snapshot: &FlagsSnapshot,
        flag: FlagsStr,
        position: Option<usize>,
        result: &Evaluation<'_>,
    ) -> Self {
        let mut detail = Self {
            flag,
            variant: FlagsStr::of_option(result.variant),
            string_value: FlagsStr::NONE,
            rule_name: FlagsStr::of_option(result.rule.and_then(|rule| rule.name)),
            unmet_prerequisite: FlagsStr::of_option(result.unmet_prerequisite),
            metadata_json: FlagsStr::of_option(position.and_then(|p| snapshot.metadata_json(p))),
            int_value: 0,
            float_value: 0.0,
            flag_version: result.flag_version.map_or(0, |version| version.0),
            value_type: FlagsType::Any,
            reason: match result.reason {
                Reason::Static => FlagsReason::Static,
                Reason::TargetingMatch => FlagsReason::TargetingMatch,
                Reason::Split => FlagsReason::Split,
                Reason::Disabled => FlagsReason::Disabled,
                Reason::Default => FlagsReason::Default,
                Reason::Error => FlagsReason::Error,
            },
            error: outcome(result),
            // Rule indexes and buckets (< 1 000 000) fit an i32; -1 is "none".
            rule_index: result.rule.map_or(-1, |rule| rule.index as i32),
            bucket: result.bucket.map_or(-1, |bucket| bucket as i32),
            bool_value: false,
            enrolled: result.enrolled,
            stale: result.stale,
            overridden: result.overridden,
            has_flag_version: result.flag_version.is_some(),
        };
        match result.value {
            Some(Value::Bool(b)) => (detail.value_type, detail.bool_value) = (FlagsType::Bool, *b),
            Some(Value::String(s)) => {
                (detail.value_type, detail.string_value) = (FlagsType::String, FlagsStr::of(s))
            }
            Some(Value::Int(i)) => (detail.value_type, detail.int_value) = (FlagsType::Int, *i),
            Some(Value::Float(f)) => {
                (detail.value_type, detail.float_value) = (FlagsType::Float, *f)
            }
            Some(object @ Value::Object(_)) => {
                detail.value_type = FlagsType::Object;
                detail.string_value = FlagsStr::of_option(snapshot.object_json(object));
            }
            None => {}
        }
        detail
    }
}

/// The status that reports an evaluation's outcome.
fn outcome(result: &Evaluation<'_>) -> FlagsStatus {
    match result.error {
        None => FlagsStatus::Ok,
        Some(ErrorCode::FlagNotFound) => FlagsStatus::FlagNotFound,
        Some(ErrorCode::TypeMismatch) => FlagsStatus::TypeMismatch,
    }
}

/// The decoded arguments every evaluation takes.
struct Call<'a> {
    snapshot: &'a FlagsSnapshot,
    ctx: &'a FlagsContext,
}

impl<'a> Call<'a> {
    /// # Safety
    /// `snapshot` and `ctx` are NULL or live handles for `'a`.
    unsafe fn new(snapshot: *const FlagsSnapshot, ctx: *const FlagsContext) -> Result<Self, Error> {
        // SAFETY: forwarded contract.
        unsafe {
            Ok(Self {
                snapshot: handle(snapshot, "snapshot")?,
                ctx: handle(ctx, "ctx")?,
            })
        }
    }

    fn at(&self) -> Timestamp {
        self.ctx.instant().unwrap_or_else(Timestamp::now)
    }

    /// The flag's position in file order (`None` for an unknown flag) and
    /// its evaluation, checked against `expected`.
    fn evaluate(&self, flag: &str, expected: Option<ValueType>) -> (Option<usize>, Evaluation<'a>) {
        self.snapshot
            .evaluate(flag, self.ctx.view(), self.at(), expected)
    }
}

/// The arguments every typed getter starts with, as the caller passed them.
struct Getter {
    snapshot: *const FlagsSnapshot,
    ctx: *const FlagsContext,
    flag: *const c_char,
    flag_len: usize,
    status: *mut FlagsStatus,
}

impl Getter {
    /// The body of every typed getter: evaluates the flag expecting
    /// `expected`, returns what `pick` reads from a success or else
    /// `default`, and writes the outcome to `status` unless it is NULL.
    ///
    /// # Safety
    /// The getters' contract: live handles, `flag` readable for `flag_len`
    /// bytes, `status` NULL or writable.
    unsafe fn run<'s, T>(
        self,
        expected: ValueType,
        default: T,
        pick: impl FnOnce(&'s FlagsSnapshot, &Evaluation<'s>) -> Option<T>,
    ) -> T {
        let mut value = default;
        let status = guard(|| {
            // SAFETY: the getters' contract on the handles and `flag`.
            let (call, flag) = unsafe {
                (
                    Call::new(self.snapshot, self.ctx)?,
                    text(self.flag, self.flag_len, "flag")?,
                )
            };
            let (_, result) = call.evaluate(flag, Some(expected));
            if let Some(picked) = pick(call.snapshot, &result) {
                value = picked;
            }
            Ok(outcome(&result))
        });
        if !self.status.is_null() {
            // SAFETY: non-NULL and writable per the getters' contract.
            unsafe { self.status.write(status) };
        }
        value
    }
}

/// The value of a boolean flag, or `default_value` if it cannot be
/// evaluated as one or serves no value (disabled without `off_variant`:
/// the status is then `FLAGS_STATUS_OK`). `status` (may be NULL) receives
/// the outcome: `FLAGS_STATUS_OK`, `_FLAG_NOT_FOUND`, `_TYPE_MISMATCH` or an
/// argument error.
///
/// # Safety
/// `snapshot` and `ctx` are live handles; `flag` is readable for `flag_len`
/// bytes; `status` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_eval_bool(
    snapshot: *const FlagsSnapshot,
    ctx: *const FlagsContext,
    flag: *const c_char,
    flag_len: usize,
    default_value: bool,
    status: *mut FlagsStatus,
) -> bool {
    // SAFETY: the same contract as this function's.
    unsafe {
        Getter {
            snapshot,
            ctx,
            flag,
            flag_len,
            status,
        }
        .run(ValueType::Bool, default_value, |_, r| r.as_bool())
    }
}

/// The value of a string flag as a view into the snapshot, or the view of
/// `default_value` (returned as given, not checked or copied) if it cannot
/// be evaluated as one. `status` as for `flags_eval_bool`.
///
/// # Safety
/// As for `flags_eval_bool`; `default_value` need not be valid at all.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_eval_string(
    snapshot: *const FlagsSnapshot,
    ctx: *const FlagsContext,
    flag: *const c_char,
    flag_len: usize,
    default_value: *const c_char,
    default_len: usize,
    status: *mut FlagsStatus,
) -> FlagsStr {
    let default = FlagsStr {
        ptr: default_value,
        len: default_len,
    };
    // SAFETY: the same contract as this function's.
    unsafe {
        Getter {
            snapshot,
            ctx,
            flag,
            flag_len,
            status,
        }
        .run(ValueType::String, default, |_, r| {
            r.as_str().map(FlagsStr::of)
        })
    }
}

/// The value of an integer flag, or `default_value`. `status` as for
/// `flags_eval_bool`.
///
/// # Safety
/// As for `flags_eval_bool`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_eval_int(
    snapshot: *const FlagsSnapshot,
    ctx: *const FlagsContext,
    flag: *const c_char,
    flag_len: usize,
    default_value: i64,
    status: *mut FlagsStatus,
) -> i64 {
    // SAFETY: the same contract as this function's.
    unsafe {
        Getter {
            snapshot,
            ctx,
            flag,
            flag_len,
            status,
        }
        .run(ValueType::Int, default_value, |_, r| r.as_int())
    }
}

/// The value of a float flag, or `default_value`. `status` as for
/// `flags_eval_bool`.
///
/// # Safety
/// As for `flags_eval_bool`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_eval_float(
    snapshot: *const FlagsSnapshot,
    ctx: *const FlagsContext,
    flag: *const c_char,
    flag_len: usize,
    default_value: f64,
    status: *mut FlagsStatus,
) -> f64 {
    // SAFETY: the same contract as this function's.
    unsafe {
        Getter {
            snapshot,
            ctx,
            flag,
            flag_len,
            status,
        }
        .run(ValueType::Float, default_value, |_, r| r.as_float())
    }
}

/// The value of an object flag as a view of its JSON text (serialised once
/// per load, so this does not allocate), or the view of `default_json` if
/// it cannot be evaluated as one. `status` as for `flags_eval_bool`.
///
/// # Safety
/// As for `flags_eval_string`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_eval_object(
    snapshot: *const FlagsSnapshot,
    ctx: *const FlagsContext,
    flag: *const c_char,
    flag_len: usize,
    default_json: *const c_char,
    default_len: usize,
    status: *mut FlagsStatus,
) -> FlagsStr {
    let default = FlagsStr {
        ptr: default_json,
        len: default_len,
    };
    // SAFETY: the same contract as this function's.
    unsafe {
        Getter {
            snapshot,
            ctx,
            flag,
            flag_len,
            status,
        }
        .run(ValueType::Object, default, |s, r| {
            r.value
                .and_then(|value| s.object_json(value))
                .map(FlagsStr::of)
        })
    }
}

/// Evaluates `flag` and writes everything about the result to `*detail`.
///
/// `expected` is a `FlagsType`: a value of another type gives
/// `FLAGS_STATUS_TYPE_MISMATCH`; `FLAGS_TYPE_ANY` accepts all. Returns the
/// outcome (also in `detail->error`); `*detail` is written when the outcome
/// is `OK`, `FLAG_NOT_FOUND` or `TYPE_MISMATCH`, and untouched on argument
/// errors.
///
/// # Safety
/// `snapshot` and `ctx` are live handles; `flag` is readable for `flag_len`
/// bytes; `detail` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_eval_detail(
    snapshot: *const FlagsSnapshot,
    ctx: *const FlagsContext,
    flag: *const c_char,
    flag_len: usize,
    expected: u32,
    detail: *mut FlagsDetail,
) -> FlagsStatus {
    guard(|| {
        // SAFETY: the caller's contract on the handles and `flag`.
        let (call, flag) = unsafe { (Call::new(snapshot, ctx)?, text(flag, flag_len, "flag")?) };
        let (position, result) = call.evaluate(flag, value_type(expected)?);
        // SAFETY: the caller's contract on `detail`.
        unsafe {
            write(
                detail,
                FlagsDetail::new(call.snapshot, FlagsStr::NONE, position, &result),
                "detail",
            )
        }?;
        Ok(outcome(&result))
    })
}

/// The type a caller's `expected` code asks for.
fn value_type(code: u32) -> Result<Option<ValueType>, Error> {
    Ok(Some(match code {
        0 => return Ok(None),
        1 => ValueType::Bool,
        2 => ValueType::String,
        3 => ValueType::Int,
        4 => ValueType::Float,
        5 => ValueType::Object,
        _ => {
            return Err(Error::new(
                FlagsStatus::InvalidArgument,
                format!("`expected` is {code}, not a FlagsType"),
            ));
        }
    }))
}

/// Evaluates every flag of the snapshot, in file order, into the array
/// `details` of `capacity` entries, and writes the number of flags to
/// `*count`.
///
/// If `capacity` is too small nothing is written to `details` and the
/// result is `FLAGS_STATUS_BUFFER_TOO_SMALL` (size the array with
/// `flags_snapshot_flag_count`). `details` may be NULL when `capacity` is 0.
///
/// # Safety
/// `snapshot` and `ctx` are live handles; `details` is writable for
/// `capacity` entries; `count` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_eval_all(
    snapshot: *const FlagsSnapshot,
    ctx: *const FlagsContext,
    details: *mut FlagsDetail,
    capacity: usize,
    count: *mut usize,
) -> FlagsStatus {
    guard(|| {
        // SAFETY: the caller's contract on the handles.
        let call = unsafe { Call::new(snapshot, ctx) }?;
        if details.is_null() && capacity > 0 {
            return Err(Error::null("details"));
        }
        let flags = call.snapshot.core.len();
        // SAFETY: the caller's contract on `count`.
        unsafe { write(count, flags, "count") }?;
        if capacity < flags {
            return Err(Error::new(
                FlagsStatus::BufferTooSmall,
                format!("{flags} flags do not fit in {capacity} details"),
            ));
        }
        let results = call.snapshot.core.evaluate_all(call.ctx.view(), call.at());
        for (i, (key, result)) in results.enumerate() {
            let detail = FlagsDetail::new(call.snapshot, FlagsStr::of(key), Some(i), &result);
            // SAFETY: `i < flags <= capacity`, and `details` is writable for
            // `capacity` entries per the caller's contract.
            unsafe { details.add(i).write(detail) };
        }
        Ok(FlagsStatus::Ok)
    })
}
