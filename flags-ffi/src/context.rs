//! The context handle: a targeting key, typed attributes and an optional
//! evaluation instant that the caller sets once and evaluates with many times.
//!
//! A context owns copies of everything it is given and keeps a ready-made
//! core [`Context`] that borrows from those copies, kept in step with each
//! change. Evaluating therefore neither parses nor allocates, however many
//! attributes there are. Not here: JSON, or any knowledge of flags.

use std::ffi::c_char;

use flags_core::{AttrValue, Context, List, Timestamp};

use crate::args::handle_mut;
use crate::error::{Error, FlagsStatus, guard};
use crate::strings::{FlagsStr, text};

/// A unit to evaluate: targeting key, attributes and evaluation instant.
///
/// Create with `flags_context_new`, free with `flags_context_free`. Setting
/// a name again replaces its value. Any number of threads may evaluate with
/// one context at once, but none may while another thread modifies it.
#[derive(Default)]
pub struct FlagsContext {
    key: Option<Box<str>>,
    attrs: Vec<(Box<str>, Owned)>,
    instant: Option<Timestamp>,
    /// `key` and `attrs` as the core reads them. Its `'static` is a promise
    /// kept by hand: every string it borrows is heap memory owned by the
    /// fields above, and each borrow leaves `view` before what it points at
    /// is replaced or freed (see [`forever`]).
    view: Context<'static>,
}

/// An attribute value owned by the context.
enum Owned {
    Str(Box<str>),
    Num(f64),
    Bool(bool),
    List(Vec<String>),
}

/// Extends a borrow of context-owned heap memory to `'static`.
///
/// # Safety
/// The memory must stay allocated and unchanged while the result is in
/// `FlagsContext::view`. Every borrowed string lives on the heap (boxed
/// strings, the buffers of `Vec<String>`), which moving `attrs` or its
/// elements does not move; the methods below take each borrow out of
/// `view` before freeing or replacing what it points at.
unsafe fn forever<T: ?Sized>(borrowed: &T) -> &'static T {
    // SAFETY: upheld by the caller as documented above.
    unsafe { &*(borrowed as *const T) }
}

impl Owned {
    /// This value as the core reads it.
    ///
    /// # Safety
    /// As for [`forever`], for `self`'s heap memory.
    unsafe fn view(&self) -> AttrValue<'static> {
        // SAFETY: forwarded contract.
        unsafe {
            match self {
                Self::Str(s) => AttrValue::Str(forever(&**s)),
                Self::Num(n) => AttrValue::Num(*n),
                Self::Bool(b) => AttrValue::Bool(*b),
                Self::List(items) => AttrValue::List(List::Strings(forever(&**items))),
            }
        }
    }
}

/// The Rust API the Python SDK's `Context` shares with the C ABI.
impl FlagsContext {
    /// An empty context: no key, no attributes, evaluated at the current time.
    pub fn new() -> Self {
        Self::default()
    }

    /// The core context to evaluate with. Its strings are only valid while
    /// `self` is borrowed (`Context` is invariant, so the honest lifetime
    /// cannot be spelled); evaluation never keeps them.
    pub fn view(&self) -> &Context<'static> {
        &self.view
    }

    /// The instant evaluations use instead of the clock, if one is set.
    pub fn instant(&self) -> Option<Timestamp> {
        self.instant
    }

    /// Evaluates at `instant` instead of the clock (`None`: the clock).
    pub fn set_instant(&mut self, instant: Option<Timestamp>) {
        self.instant = instant;
    }

    /// Sets a string attribute (copied).
    pub fn set_string(&mut self, name: &str, value: &str) {
        self.set(name, Owned::Str(value.into()));
    }

    /// Sets a number attribute (integers and floats compare numerically).
    pub fn set_number(&mut self, name: &str, value: f64) {
        self.set(name, Owned::Num(value));
    }

    /// Sets a boolean attribute.
    pub fn set_bool(&mut self, name: &str, value: bool) {
        self.set(name, Owned::Bool(value));
    }

    /// Sets a string-list attribute.
    pub fn set_strings(&mut self, name: &str, items: Vec<String>) {
        self.set(name, Owned::List(items));
    }

    /// Removes an attribute; removing one that is not set is no error.
    pub fn remove(&mut self, name: &str) {
        self.retain(false, |n| n != name);
    }

    /// Removes the key, every attribute and the instant, keeping the
    /// memory for reuse.
    pub fn clear(&mut self) {
        self.retain(true, |_| false);
        self.instant = None;
    }

    /// Sets the targeting key (the default bucketing unit; `attr = "key"`
    /// in conditions), copied.
    pub fn set_key(&mut self, key: &str) {
        // Unhook the old key from the view before it is freed.
        self.view.set_key(None);
        let key = self.key.insert(key.into());
        // SAFETY: `key` is a boxed string owned by `self.key` (see `forever`).
        self.view.set_key(Some(unsafe { forever(&**key) }));
    }

    /// Sets one attribute in O(attributes), keeping `view` in step without
    /// rebuilding it.
    fn set(&mut self, name: &str, value: Owned) {
        let index = match self.attrs.iter().position(|(n, _)| **n == *name) {
            Some(index) => {
                // SAFETY: the name stays in `attrs`; only its value changes.
                let name = unsafe { forever(&*self.attrs[index].0) };
                // Unhook the old value from the view before it is dropped.
                self.view.set(name, AttrValue::Null);
                self.attrs[index].1 = value;
                index
            }
            None => {
                self.attrs.push((name.into(), value));
                self.attrs.len() - 1
            }
        };
        let (name, value) = &self.attrs[index];
        // SAFETY: both live in `attrs` until the next change (see `forever`).
        unsafe { self.view.set(forever(&**name), value.view()) };
    }

    /// Removes the key (if `key`) and the attributes `keep` rejects, then
    /// rebuilds `view`, which has no removal of its own. `view` is emptied
    /// first, so it never holds a borrow of what is freed.
    fn retain(&mut self, key: bool, mut keep: impl FnMut(&str) -> bool) {
        self.view.clear();
        if key {
            self.key = None;
        }
        self.attrs.retain(|(name, _)| keep(name));
        // SAFETY: everything borrowed stays in `key`/`attrs` until the next
        // change (see `forever`).
        unsafe {
            self.view
                .set_key(self.key.as_deref().map(|key| forever(key)));
            for (name, value) in &self.attrs {
                self.view.set(forever(&**name), value.view());
            }
        }
    }
}

/// The context behind the caller's handle.
///
/// # Safety
/// `ctx` is NULL or a live context no other thread is using.
unsafe fn context<'a>(ctx: *mut FlagsContext) -> Result<&'a mut FlagsContext, Error> {
    // SAFETY: forwarded contract.
    unsafe { handle_mut(ctx, "ctx") }
}

/// Creates an empty context: no key, no attributes, evaluated at the
/// current time. Never returns NULL unless memory is exhausted.
#[unsafe(no_mangle)]
pub extern "C" fn flags_context_new() -> *mut FlagsContext {
    let mut created = std::ptr::null_mut();
    guard(|| {
        created = Box::into_raw(Box::new(FlagsContext::new()));
        Ok(FlagsStatus::Ok)
    });
    created
}

/// Frees a context. NULL is ignored.
///
/// # Safety
/// `ctx` is NULL or a live context that no other thread is using.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_context_free(ctx: *mut FlagsContext) {
    guard(|| {
        if !ctx.is_null() {
            // SAFETY: a live context from `flags_context_new`, freed once.
            drop(unsafe { Box::from_raw(ctx) });
        }
        Ok(FlagsStatus::Ok)
    });
}

/// Sets the targeting key (the default bucketing unit; `attr = "key"` in
/// conditions). The text is copied.
///
/// # Safety
/// `ctx` is a live context not in use by another thread; `key` is readable
/// for `key_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_context_set_key(
    ctx: *mut FlagsContext,
    key: *const c_char,
    key_len: usize,
) -> FlagsStatus {
    guard(|| {
        // SAFETY: the caller's contract on `ctx` and `key`.
        let (ctx, key) = unsafe { (context(ctx)?, text(key, key_len, "key")?) };
        ctx.set_key(key);
        Ok(FlagsStatus::Ok)
    })
}

/// Sets a string attribute. Name and value are copied.
///
/// # Safety
/// `ctx` is a live context not in use by another thread; `name` and `value`
/// are readable for their lengths.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_context_set_string(
    ctx: *mut FlagsContext,
    name: *const c_char,
    name_len: usize,
    value: *const c_char,
    value_len: usize,
) -> FlagsStatus {
    guard(|| {
        // SAFETY: the caller's contract on every argument.
        let (ctx, name, value) = unsafe {
            (
                context(ctx)?,
                text(name, name_len, "name")?,
                text(value, value_len, "value")?,
            )
        };
        ctx.set_string(name, value);
        Ok(FlagsStatus::Ok)
    })
}

/// Sets a number attribute (integers and floats compare numerically).
///
/// # Safety
/// `ctx` is a live context not in use by another thread; `name` is readable
/// for `name_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_context_set_number(
    ctx: *mut FlagsContext,
    name: *const c_char,
    name_len: usize,
    value: f64,
) -> FlagsStatus {
    guard(|| {
        // SAFETY: the caller's contract on `ctx` and `name`.
        let (ctx, name) = unsafe { (context(ctx)?, text(name, name_len, "name")?) };
        ctx.set_number(name, value);
        Ok(FlagsStatus::Ok)
    })
}

/// Sets a boolean attribute.
///
/// # Safety
/// `ctx` is a live context not in use by another thread; `name` is readable
/// for `name_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_context_set_bool(
    ctx: *mut FlagsContext,
    name: *const c_char,
    name_len: usize,
    value: bool,
) -> FlagsStatus {
    guard(|| {
        // SAFETY: the caller's contract on `ctx` and `name`.
        let (ctx, name) = unsafe { (context(ctx)?, text(name, name_len, "name")?) };
        ctx.set_bool(name, value);
        Ok(FlagsStatus::Ok)
    })
}

/// Sets a string-list attribute from `count` views at `items` (which may be
/// NULL when `count` is 0). Every string is copied; if any is invalid the
/// context is left unchanged.
///
/// # Safety
/// `ctx` is a live context not in use by another thread; `name` is readable
/// for `name_len` bytes; `items` is readable for `count` views, each
/// readable for its length.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_context_set_string_list(
    ctx: *mut FlagsContext,
    name: *const c_char,
    name_len: usize,
    items: *const FlagsStr,
    count: usize,
) -> FlagsStatus {
    guard(|| {
        // SAFETY: the caller's contract on `ctx` and `name`.
        let (ctx, name) = unsafe { (context(ctx)?, text(name, name_len, "name")?) };
        let items: &[FlagsStr] = match (items.is_null(), count) {
            (_, 0) => &[],
            (true, _) => return Err(Error::null("items")),
            // SAFETY: non-NULL and readable for `count` views per the contract.
            (false, _) => unsafe { std::slice::from_raw_parts(items, count) },
        };
        let list = items
            .iter()
            // SAFETY: each view is readable for its length per the contract.
            .map(|item| unsafe { item.read("items[]") }.map(String::from))
            .collect::<Result<Vec<_>, _>>()?;
        ctx.set_strings(name, list);
        Ok(FlagsStatus::Ok)
    })
}

/// Removes an attribute; removing one that is not set is not an error.
///
/// # Safety
/// `ctx` is a live context not in use by another thread; `name` is readable
/// for `name_len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_context_remove(
    ctx: *mut FlagsContext,
    name: *const c_char,
    name_len: usize,
) -> FlagsStatus {
    guard(|| {
        // SAFETY: the caller's contract on `ctx` and `name`.
        let (ctx, name) = unsafe { (context(ctx)?, text(name, name_len, "name")?) };
        ctx.remove(name);
        Ok(FlagsStatus::Ok)
    })
}

/// Removes the key, every attribute and the instant, keeping the memory
/// for reuse.
///
/// # Safety
/// `ctx` is a live context not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_context_clear(ctx: *mut FlagsContext) -> FlagsStatus {
    guard(|| {
        // SAFETY: the caller's contract on `ctx`.
        unsafe { context(ctx) }?.clear();
        Ok(FlagsStatus::Ok)
    })
}

/// Evaluates at a fixed instant instead of the current time (schedules and
/// `before`/`after` conditions read it): `unix_seconds` and `nanos`
/// (below 1 000 000 000) after 1970-01-01T00:00:00Z.
///
/// # Safety
/// `ctx` is a live context not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_context_set_instant(
    ctx: *mut FlagsContext,
    unix_seconds: i64,
    nanos: u32,
) -> FlagsStatus {
    guard(|| {
        // SAFETY: the caller's contract on `ctx`.
        let ctx = unsafe { context(ctx) }?;
        if nanos >= 1_000_000_000 {
            return Err(Error::new(
                FlagsStatus::InvalidArgument,
                format!("`nanos` is {nanos}, not below 1 000 000 000"),
            ));
        }
        ctx.set_instant(Some(Timestamp::from_unix(unix_seconds, nanos)));
        Ok(FlagsStatus::Ok)
    })
}

/// Goes back to evaluating at the current time.
///
/// # Safety
/// `ctx` is a live context not in use by another thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn flags_context_clear_instant(ctx: *mut FlagsContext) -> FlagsStatus {
    guard(|| {
        // SAFETY: the caller's contract on `ctx`.
        unsafe { context(ctx) }?.set_instant(None);
        Ok(FlagsStatus::Ok)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The view, as (name, value as text) pairs, for comparison.
    fn seen(ctx: &FlagsContext) -> (Option<&str>, Vec<(&str, String)>) {
        let view = ctx.view();
        let attrs = view
            .attributes()
            .map(|(n, v)| (n, format!("{v:?}")))
            .collect();
        (view.key(), attrs)
    }

    #[test]
    fn the_view_follows_sets_replacements_and_removals() {
        let mut ctx = FlagsContext::new();
        ctx.set_key("first");
        ctx.set_key("second");
        ctx.set("plan", Owned::Str("free".into()));
        ctx.set("roles", Owned::List(vec!["a".into(), "b".into()]));
        // Many more attributes than fit inline: the storage moves.
        for i in 0..40 {
            ctx.set(&format!("n{i}"), Owned::Num(f64::from(i)));
        }
        ctx.set("plan", Owned::Str("pro".into()));
        ctx.set("roles", Owned::Bool(true));
        let (key, attrs) = seen(&ctx);
        assert_eq!(key, Some("second"));
        assert_eq!(attrs.len(), 42);
        assert_eq!(attrs[0], ("plan", "\"pro\"".to_string()));
        assert_eq!(attrs[1], ("roles", "true".to_string()));
        assert_eq!(attrs[41], ("n39", "39".to_string()));

        ctx.remove("plan");
        let (key, attrs) = seen(&ctx);
        assert_eq!((key, attrs.len()), (Some("second"), 41));
        assert!(ctx.view().get("plan").is_none());
        ctx.set("plan", Owned::Str("again".into()));
        assert!(matches!(
            ctx.view().get("plan"),
            Some(AttrValue::Str("again"))
        ));

        ctx.clear();
        assert_eq!(seen(&ctx), (None, Vec::new()));
    }
}
