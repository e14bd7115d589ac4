//! Kills that do not come from the file: disabling flags of a compiled
//! [`Snapshot`] at run time (an operator's admin request, a guardrail) and
//! saying who disabled each flag.
//!
//! A runtime kill is the file's `enabled = false` without editing the file:
//! the flag serves its `off_variant` (or, without one, no value: callers use
//! their own default) with reason `DISABLED`, flags that require it see
//! that variant (or an unmet requirement), and evaluations name who disabled it
//! ([`Evaluation::killed_by`](crate::Evaluation::killed_by)). It is applied
//! by deriving a new snapshot ([`Snapshot::with_runtime_kills`]), so
//! evaluation reads one more field and nothing else. Not here: where kills
//! are stored, who may ask for one, or when they are re-applied (the server
//! applies them to every snapshot it publishes).

use std::fmt;

use crate::compile::valid_name;
use crate::snapshot::{Slot, Snapshot};

/// Who disabled a flag.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KilledBy {
    /// The file: `enabled = false`.
    File,
    /// An operator, through the server's admin API.
    Admin,
    /// A guardrail watching the named metric.
    Guardrail(Box<str>),
}

/// The file's kill, borrowed by evaluations of flags the file disables.
pub(crate) static BY_FILE: KilledBy = KilledBy::File;

impl KilledBy {
    /// Reads the form [`Display`](fmt::Display) writes: `file`, `admin` or
    /// `guardrail:<metric>` with a valid metric name; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "file" => Some(Self::File),
            "admin" => Some(Self::Admin),
            _ => text
                .strip_prefix("guardrail:")
                .filter(|metric| valid_name(metric))
                .map(|metric| Self::Guardrail(metric.into())),
        }
    }
}

impl fmt::Display for KilledBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File => f.write_str("file"),
            Self::Admin => f.write_str("admin"),
            Self::Guardrail(metric) => write!(f, "guardrail:{metric}"),
        }
    }
}

impl serde::Serialize for KilledBy {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Slot {
    /// Who disabled this flag: the file first (a runtime revive cannot undo
    /// it), whether its served version says `enabled = false` or a newer
    /// text with errors switched the kept version off; else a runtime kill.
    pub(crate) fn killed_by(&self) -> Option<&KilledBy> {
        if self.flag.enabled && !self.disabled {
            self.runtime_kill.as_ref()
        } else {
            Some(&BY_FILE)
        }
    }
}

impl Snapshot {
    /// This snapshot with exactly the flags named in `kills` disabled at run
    /// time, each recording who disabled it. Runtime kills of `self` are not
    /// carried over: pass the whole set every time. Keys that name no flag
    /// are ignored, so one set of kills can be applied to every version of
    /// a config. Flags are shared with `self`, not copied.
    pub fn with_runtime_kills<'k>(
        &self,
        kills: impl IntoIterator<Item = (&'k str, &'k KilledBy)>,
    ) -> Snapshot {
        let mut slots: Vec<Slot> = self
            .slots
            .iter()
            .map(|slot| Slot {
                runtime_kill: None,
                ..slot.clone()
            })
            .collect();
        for (key, by) in kills {
            if let Some(i) = self.slot_index(key) {
                slots[i].runtime_kill = Some(by.clone());
            }
        }
        Snapshot {
            slots,
            index: self.index.clone(),
            version: self.version,
            metrics: self.metrics.clone(),
            overrides: self.overrides.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, Overrides, Reason, compile};

    const TEXT: &str = r#"version = 1
[flags.parent]
[[flags.parent.rules]]
serve = "on"

[flags.child]
requires = [{ flag = "parent", variant = "on" }]
[[flags.child.rules]]
serve = "on"

[flags.off]
enabled = false
[[flags.off.rules]]
serve = "on"
"#;

    fn guardrail(metric: &str) -> KilledBy {
        KilledBy::Guardrail(metric.into())
    }

    #[test]
    fn a_runtime_kill_serves_disabled_and_says_who() {
        let snapshot = compile(TEXT, &Overrides::new()).unwrap();
        let killed = snapshot.with_runtime_kills([("parent", &KilledBy::Admin)]);
        let ctx = Context::with_key("u");
        let result = killed.evaluate("parent", &ctx);
        assert_eq!(result.reason, Reason::Disabled);
        assert_eq!(
            (result.value, result.variant),
            (None, None),
            "no off_variant: no value"
        );
        assert_eq!(result.killed_by, Some(&KilledBy::Admin));
        assert_eq!(
            killed.flag("parent").unwrap().killed_by(),
            Some(&KilledBy::Admin)
        );
        // The original is untouched.
        let served = snapshot.evaluate("parent", &ctx);
        assert_eq!(
            (served.reason, served.killed_by),
            (Reason::TargetingMatch, None)
        );
    }

    #[test]
    fn prerequisites_see_a_runtime_kill() {
        let snapshot = compile(TEXT, &Overrides::new()).unwrap();
        let ctx = Context::with_key("u");
        assert_eq!(snapshot.evaluate("child", &ctx).variant, Some("on"));
        let killed = snapshot.with_runtime_kills([("parent", &guardrail("errors"))]);
        let child = killed.evaluate("child", &ctx);
        assert_eq!(child.reason, Reason::Default);
        assert_eq!(child.unmet_prerequisite, Some("parent"));
        assert_eq!(child.killed_by, None, "the child itself is not killed");
    }

    #[test]
    fn each_application_replaces_the_previous_set_and_ignores_unknown_keys() {
        let snapshot = compile(TEXT, &Overrides::new()).unwrap();
        let once =
            snapshot.with_runtime_kills([("parent", &KilledBy::Admin), ("gone", &KilledBy::Admin)]);
        let twice = once.with_runtime_kills([("child", &KilledBy::Admin)]);
        assert_eq!(twice.flag("parent").unwrap().killed_by(), None);
        assert_eq!(
            twice.flag("child").unwrap().killed_by(),
            Some(&KilledBy::Admin)
        );
        let none = twice.with_runtime_kills([]);
        assert!(none.flags().all(|f| f.runtime_kill().is_none()));
    }

    #[test]
    fn the_file_kill_is_reported_before_a_runtime_one() {
        let snapshot = compile(TEXT, &Overrides::new()).unwrap();
        let ctx = Context::with_key("u");
        assert_eq!(
            snapshot.evaluate("off", &ctx).killed_by,
            Some(&KilledBy::File)
        );
        let killed = snapshot.with_runtime_kills([("off", &KilledBy::Admin)]);
        let info = killed.flag("off").unwrap();
        assert_eq!(info.killed_by(), Some(&KilledBy::File));
        assert_eq!(info.runtime_kill(), Some(&KilledBy::Admin));
        assert_eq!(
            killed.evaluate("off", &ctx).killed_by,
            Some(&KilledBy::File)
        );
    }

    #[test]
    fn an_override_takes_precedence_over_a_runtime_kill_as_over_the_files() {
        let overrides = Overrides::new().force("parent", "on").force("off", "on");
        let snapshot = compile(TEXT, &overrides).unwrap();
        let killed = snapshot.with_runtime_kills([("parent", &KilledBy::Admin)]);
        let ctx = Context::with_key("u");
        for key in ["parent", "off"] {
            let result = killed.evaluate(key, &ctx);
            assert_eq!(
                (result.reason, result.overridden),
                (Reason::Static, true),
                "{key}"
            );
            assert_eq!(result.killed_by, None, "{key}");
        }
    }

    #[test]
    fn who_reads_back_as_written() {
        for by in [KilledBy::File, KilledBy::Admin, guardrail("p99-latency")] {
            assert_eq!(KilledBy::parse(&by.to_string()), Some(by.clone()));
            assert_eq!(serde_json::to_string(&by).unwrap(), format!("\"{by}\""));
        }
        assert_eq!(guardrail("errors").to_string(), "guardrail:errors");
        for bad in ["", "Admin", "guardrail:", "guardrail:bad name", "operator"] {
            assert_eq!(KilledBy::parse(bad), None, "{bad:?}");
        }
    }
}
