//! Experiment statistics (work in progress: distribution functions first).
pub mod dist;
