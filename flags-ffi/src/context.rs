//! The context handle: a targeting key, typed attributes and an optional
//! evaluation instant that the caller sets once and evaluates with many times.
//!
//! A context owns copies of everything it is given and keeps a ready-made
//! core [`Context`] that borrows from those copies, rebuilt after each change.
//! Evaluating therefore neither parses nor allocates, however many
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
pub struct FlagsContext {
    key: Option<Box<str>>,
    attrs: Vec<(Box<str>, Owned)>,
    instant: Option<Timestamp>,
    /// `key` and `attrs` as the core reads them. Its `'static` is a promise
    /// kept by hand: every string it borrows is heap memory owned by the
    /// fields above, and `view` is emptied before any of it is replaced or
    /// freed, then rebuilt (see [`FlagsContext::change`]).
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
/// `FlagsContext::view`; `change` guarantees that.
unsafe fn forever<T: ?Sized>(borrowed: &T) -> &'static T {
    // SAFETY: upheld by the caller as documented above.
    unsafe { &*(borrowed as *const T) }
}

impl FlagsContext {
    /// The core context to evaluate with. Its strings are only valid while
    /// `self` is borrowed (`Context` is invariant, so the honest lifetime
    /// cannot be spelled); evaluation never keeps them.
    pub(crate) fn view(&self) -> &Context<'static> {
        &self.view
    }

    /// The instant set with `flags_context_set_instant`, if any.
    pub(crate) fn instant(&self) -> Option<Timestamp> {
        self.instant
    }

    /// Applies `edit` to the owned key and attributes, keeping `view` sound:
    /// it is emptied first (so it never holds a borrow of freed memory) and
    /// rebuilt after, reusing its storage.
    fn change(&mut self, edit: impl FnOnce(&mut Option<Box<str>>, &mut Vec<(Box<str>, Owned)>)) {
        self.view.clear();
        edit(&mut self.key, &mut self.attrs);
        // SAFETY: each borrowed string lives on the heap (boxed strings, the
        // buffers of `Vec<String>`), which moving `attrs` or its elements
        // does not move; nothing is replaced or freed before the next
        // `change` clears `view` again.
        unsafe {
            self.view
                .set_key(self.key.as_deref().map(|key| forever(key)));
            for (name, value) in &self.attrs {
                let value = match value {
                    Owned::Str(s) => AttrValue::Str(forever(&**s)),
                    Owned::Num(n) => AttrValue::Num(*n),
                    Owned::Bool(b) => AttrValue::Bool(*b),
                    Owned::List(items) => AttrValue::List(List::Strings(forever(&**items))),
                };
                self.view.set(forever(&**name), value);
            }
        }
    }

    fn set(&mut self, name: &str, value: Owned) {
        self.change(
            |_, attrs| match attrs.iter_mut().find(|(n, _)| **n == *name) {
                Some(slot) => slot.1 = value,
                None => attrs.push((name.into(), value)),
            },
        );
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
        created = Box::into_raw(Box::new(FlagsContext {
            key: None,
            attrs: Vec::new(),
            instant: None,
            view: Context::new(),
        }));
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
        ctx.change(|slot, _| *slot = Some(key.into()));
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
        ctx.set(name, Owned::Str(value.into()));
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
        ctx.set(name, Owned::Num(value));
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
        ctx.set(name, Owned::Bool(value));
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
        ctx.set(name, Owned::List(list));
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
        ctx.change(|_, attrs| attrs.retain(|(n, _)| **n != *name));
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
        let ctx = unsafe { context(ctx) }?;
        ctx.change(|key, attrs| {
            *key = None;
            attrs.clear();
        });
        ctx.instant = None;
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
        ctx.instant = Some(Timestamp::from_unix(unix_seconds, nanos));
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
        unsafe { context(ctx) }?.instant = None;
        Ok(FlagsStatus::Ok)
    })
}
