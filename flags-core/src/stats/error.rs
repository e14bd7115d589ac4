//! The one error type of the statistics module: inputs that cannot be statistics.

use thiserror::Error;

/// An input that cannot be a statistic, with the arm (or setting) it came from.
///
/// Undefined results (a zero standard error, a zero control mean for a relative
/// lift, fewer than two units for a variance) are not errors: they come back as
/// `None`. An `InputError` means the numbers themselves are impossible.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum InputError {
    /// An arm's sufficient statistics are impossible.
    #[error("arm {index} ({name:?}): {problem}")]
    Arm {
        /// Position of the arm in the request (0 is control).
        index: usize,
        /// Name of the arm as given by the caller.
        name: String,
        /// What is wrong with it.
        problem: ArmProblem,
    },
    /// A setting that is not about one arm is out of range.
    #[error("{field}: {problem}")]
    Setting {
        /// The request field, in its JSON spelling (e.g. `alpha`, `weights`).
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// What is wrong with one arm's numbers.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ArmProblem {
    /// `units` below zero.
    #[error("units is negative ({0})")]
    NegativeUnits(i64),
    /// `conversions` below zero.
    #[error("conversions is negative ({0})")]
    NegativeConversions(i64),
    /// More conversions than units.
    #[error("conversions ({conversions}) exceed units ({units})")]
    ConversionsExceedUnits {
        /// The arm's units.
        units: i64,
        /// The arm's conversions.
        conversions: i64,
    },
    /// A sum is NaN or infinite.
    #[error("{0} is not a finite number")]
    NotFinite(&'static str),
    /// `sum_of_squares` below zero.
    #[error("sum_of_squares is negative ({0})")]
    NegativeSumOfSquares(f64),
    /// A mean arm with no units but a non-zero sum.
    #[error("units is 0 but {0} is not")]
    SumWithoutUnits(&'static str),
    /// `sum_of_squares < sum^2 / units` by more than rounding allows.
    #[error(
        "sum_of_squares ({sum_of_squares}) is below sum^2/units ({minimum}): the variance would be negative"
    )]
    NegativeVariance {
        /// The arm's sum of squares.
        sum_of_squares: f64,
        /// The smallest sum of squares consistent with the sum, `sum^2 / units`.
        minimum: f64,
    },
    /// The arm's statistics are too large to square without overflow.
    #[error("sum and sum_of_squares are too large to compute a variance in 64-bit floating point")]
    Overflow,
    /// A count (of a conversion metric's covariate) outside `[0, max]`.
    #[error("{name} ({value}) must lie between 0 and {max}")]
    CountOutOfRange {
        /// The field.
        name: &'static str,
        /// Its value.
        value: f64,
        /// The largest it may be: the units, or for the units that converted
        /// both before and after, the fewer of the two counts.
        max: f64,
    },
    /// Some arms have a CUPED covariate and this one has not.
    #[error(
        "other arms have a covariate (CUPED) and this one has none: give it on every arm or on none"
    )]
    MissingCovariate,
    /// A ratio arm's denominator sums to 0 while it has units.
    #[error("the denominator's sum is 0: the ratio does not exist")]
    ZeroDenominator,
    /// A ratio arm's covariance exceeds what its variances allow.
    #[error(
        "sum_of_products gives a covariance of {covariance}, beyond the bound {bound} that the two sides' variances allow"
    )]
    ImpossibleCovariance {
        /// The sample covariance of numerator and denominator.
        covariance: f64,
        /// `sqrt(v_m v_d)`, its largest possible size.
        bound: f64,
    },
    /// A problem with one side of a ratio arm (numerator or denominator),
    /// or with an arm's CUPED covariate.
    #[error("{side}: {problem}")]
    Side {
        /// `numerator`, `denominator` or `covariate`.
        side: &'static str,
        /// What is wrong with it.
        problem: Box<ArmProblem>,
    },
    /// The arm's kind does not match the request's metric.
    #[error("{0}")]
    WrongKind(&'static str),
}

impl InputError {
    /// An error about a setting (not an arm).
    pub(crate) fn setting(field: &'static str, problem: impl Into<String>) -> Self {
        InputError::Setting {
            field,
            problem: problem.into(),
        }
    }

    /// An error about the arm at `index` named `name`.
    pub(crate) fn arm(index: usize, name: &str, problem: ArmProblem) -> Self {
        InputError::Arm {
            index,
            name: name.to_owned(),
            problem,
        }
    }
}

/// Checks a significance level: finite and strictly between 0 and 1.
pub(crate) fn check_alpha(alpha: f64) -> Result<(), InputError> {
    if alpha.is_finite() && alpha > 0.0 && alpha < 1.0 {
        Ok(())
    } else {
        Err(InputError::setting(
            "alpha",
            format!("must be strictly between 0 and 1, got {alpha}"),
        ))
    }
}
