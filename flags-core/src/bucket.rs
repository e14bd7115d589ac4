//! Bucketing v1: the one function that maps a unit to a bucket.
//!
//! Normative spec in `docs/bucketing.md`; golden vectors in
//! `tests/vectors/bucketing.json`. Everything that draws a bucket (rollouts,
//! schedules, splits, experiment traffic, layers) goes through [`bucket`], so
//! every language that reimplements these few lines gets the same answers.
//!
//! Not here: deciding what a bucket means for a rule; that is `eval`'s job.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Number of buckets: a bucket is in `[0, BUCKETS)`, i.e. 0.0001 % granularity.
pub const BUCKETS: u32 = 1_000_000;

/// Largest number of decimals a percentage may carry (so it maps onto whole buckets).
pub const PERCENT_DECIMALS: u32 = 4;

/// The hash seed derived from a salt: `xxh3_64(salt)`.
///
/// Snapshots store seeds, not salts, so evaluation never re-hashes a salt.
pub fn seed(salt: &str) -> u64 {
    xxh3_64(salt.as_bytes())
}

/// The bucket of `unit` under `seed`: `(xxh3_64_with_seed(unit, seed) * 1_000_000) >> 64`.
///
/// Multiply-shift instead of modulo keeps every bucket equally likely.
pub fn bucket(seed: u64, unit: &str) -> u32 {
    let h = xxh3_64_with_seed(unit.as_bytes(), seed);
    ((u128::from(h) * u128::from(BUCKETS)) >> 64) as u32
}

/// The bucket threshold of a percentage: `round(p * 10_000)`.
///
/// Returns `None` unless `0 <= p <= 100` with at most four decimals, because a
/// percentage that does not land on a whole bucket would be silently rounded.
/// Decimals are counted in the shortest decimal form that reads back as the
/// same float (what the file said), not with a float tolerance that would let
/// `99.99999999999` through as 100.
pub fn threshold(percent: f64) -> Option<u32> {
    if !(0.0..=100.0).contains(&percent) {
        return None;
    }
    // `Display` for f64 prints that shortest round-trip form, never an exponent.
    let text = percent.to_string();
    let decimals = text
        .split_once('.')
        .map_or(0, |(_, fraction)| fraction.len());
    (decimals <= PERCENT_DECIMALS as usize).then(|| (percent * 10_000.0).round() as u32)
}

/// The bucket of `unit` under `salt`, hashing the salt on the spot.
///
/// A convenience for tools and tests; evaluation uses [`bucket`] with precomputed seeds.
pub fn bucket_for_salt(salt: &str, unit: &str) -> u32 {
    bucket(seed(salt), unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_accept_four_decimals_and_reject_more() {
        assert_eq!(threshold(25.5), Some(255_000));
        assert_eq!(threshold(0.0001), Some(1));
        assert_eq!(threshold(100.0), Some(BUCKETS));
        assert_eq!(threshold(33.3333), Some(333_333));
        assert_eq!(threshold(0.1), Some(1_000));
        assert_eq!(threshold(0.00001), None);
        assert_eq!(threshold(33.33333), None);
        assert_eq!(threshold(-1.0), None);
        assert_eq!(threshold(100.5), None);
        assert_eq!(threshold(f64::NAN), None);
        assert_eq!(threshold(25.50000000001), None);
        assert_eq!(threshold(99.99999999999), None);
        assert_eq!(threshold(1e-11), None);
        assert_eq!(threshold(0.00009999999), None);
    }

    #[test]
    fn buckets_stay_in_range_at_the_extremes_of_the_hash() {
        // The largest possible hash maps to the last bucket, never past it.
        assert_eq!(
            ((u128::from(u64::MAX) * 1_000_000) >> 64) as u32,
            BUCKETS - 1
        );
        assert!(bucket(0, "") < BUCKETS);
    }
}
