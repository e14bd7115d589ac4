//! Exposures: which unit was served which arm of a flag that compares
//! units (an experiment, or a guardrail's rollout), for the readout to
//! count. The provider reports one for every evaluation whose unit is
//! enrolled, to an [`ExposureSink`]: a closure, or (feature `http`)
//! [`HttpExposures`](crate::HttpExposures), which batches them to a
//! server's `POST /v1/events`.
//!
//! Not here: deciding enrolment (the engine) or storing events (the server).

use flags_core::Timestamp;
use xxhash_rust::xxh3::Xxh3;

/// One unit served one arm of one flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exposure<'a> {
    /// The flag.
    pub flag: &'a str,
    /// The arm the unit counts under: the variant served, except for a unit
    /// that fell through a guarded rollout, which counts as its control.
    pub variant: &'a str,
    /// The unit: the flag's `bucket_by` attribute, else the targeting key.
    pub unit: &'a str,
    /// When it was evaluated.
    pub time: Timestamp,
}

impl Exposure<'_> {
    /// An event id that is the same for every exposure of this unit to
    /// this arm of this flag, so that sending one again (a retry, or a
    /// later evaluation) is never counted twice: the server keeps a unit's
    /// first exposure to each arm and answers a repeated id `duplicate` (or
    /// `conflict`, keeping the first, when its time differs).
    pub fn id(&self) -> String {
        let mut hasher = Xxh3::new();
        for part in [self.flag, self.variant, self.unit] {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
        format!("exp-{:032x}", hasher.digest128())
    }
}

/// Where the provider reports exposures. Called on the evaluating thread,
/// so it should return quickly (queue, don't send).
pub trait ExposureSink: Send + Sync + 'static {
    /// Reports one exposure.
    fn expose(&self, exposure: &Exposure<'_>);
}

impl<F: Fn(&Exposure<'_>) + Send + Sync + 'static> ExposureSink for F {
    fn expose(&self, exposure: &Exposure<'_>) {
        self(exposure)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_name_the_flag_arm_and_unit_and_nothing_else() {
        let at = |secs| Timestamp::from_unix(secs, 0);
        let exposure = |flag, variant, unit, time| Exposure {
            flag,
            variant,
            unit,
            time,
        };
        let first = exposure("f", "a", "u", at(1));
        assert_eq!(first.id(), exposure("f", "a", "u", at(2)).id());
        assert_ne!(first.id(), exposure("f", "b", "u", at(1)).id());
        assert_ne!(first.id(), exposure("f", "a", "v", at(1)).id());
        // Lengths are hashed too: moving a character between parts changes the id.
        assert_ne!(
            exposure("fa", "", "u", at(1)).id(),
            exposure("f", "a", "u", at(1)).id()
        );
        assert!(first.id().len() <= 256, "the server's bound on ids");
    }
}
