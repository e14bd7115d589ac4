//! Problems found while loading a `flags.toml`, each with its position.
//!
//! One [`Diagnostic`] per problem, all collected in one pass so an operator
//! fixes everything in one round trip. Positions are 1-based line and column
//! (columns count characters, not bytes).

use std::fmt;
use std::ops::Range;

/// What part of the config a diagnostic belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// A `[flags.NAME]` table.
    Flag,
    /// A `[segments.NAME]` table.
    Segment,
    /// A `[layers.NAME]` table.
    Layer,
    /// A `[metrics.NAME]` table.
    Metric,
}

impl Section {
    /// The table name in the file: `flags`, `segments`, `layers`, `metrics`.
    pub fn table(self) -> &'static str {
        match self {
            Self::Flag => "flags",
            Self::Segment => "segments",
            Self::Layer => "layers",
            Self::Metric => "metrics",
        }
    }
}

/// One problem in a config file.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
    /// The section the problem belongs to, if it is inside one.
    pub section: Option<Section>,
    /// The name of the flag, segment, layer or metric, if inside one.
    pub name: Option<String>,
    /// What is wrong, in a sentence.
    pub message: String,
}

impl Diagnostic {
    /// Whether this problem belongs to the flag `key`.
    pub fn is_about_flag(&self, key: &str) -> bool {
        self.section == Some(Section::Flag) && self.name.as_deref() == Some(key)
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.line, self.column)?;
        if let (Some(section), Some(name)) = (self.section, &self.name) {
            write!(f, "{}.{}: ", section.table(), name)?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one load, in file order.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostics {
    /// The file the problems are in, when known; prefixes each line on display.
    pub path: Option<String>,
    /// The problems.
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// These problems, of no named file yet.
    pub fn new(items: Vec<Diagnostic>) -> Self {
        Self { path: None, items }
    }

    /// `value` when `items` is empty, else these problems.
    pub fn result<T>(value: T, items: Vec<Diagnostic>) -> Result<T, Self> {
        if items.is_empty() {
            Ok(value)
        } else {
            Err(Self::new(items))
        }
    }

    /// Names the file the problems are in.
    pub fn in_file(mut self, path: impl Into<String>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// Whether no problem was found.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            if let Some(path) = &self.path {
                write!(f, "{path}:")?;
            }
            write!(f, "{item}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Turns byte offsets into 1-based line and column numbers.
///
/// Public so that the server's other TOML files (webhooks) report their
/// problems with the same positions as `flags.toml`.
pub struct LineIndex<'a> {
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// An index of `text`'s lines.
    pub fn new(text: &'a str) -> Self {
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self { text, line_starts }
    }

    /// Line and column of a byte offset (clamped to the text).
    pub fn position(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |prefix| prefix.chars().count());
        (line as u32 + 1, column as u32 + 1)
    }

    /// A diagnostic at the start of `span`.
    pub fn at(&self, span: &Range<usize>, message: impl Into<String>) -> Diagnostic {
        let (line, column) = self.position(span.start);
        Diagnostic {
            line,
            column,
            section: None,
            name: None,
            message: message.into(),
        }
    }

    /// A TOML or serde error as a diagnostic, at its own span or at `fallback`.
    pub fn toml_error(&self, error: &toml::de::Error, fallback: Range<usize>) -> Diagnostic {
        let span = error.span().unwrap_or(fallback);
        // serde calls enum cases "variants", which reads as flag variants here.
        let message = error
            .message()
            .trim_end()
            .replace("unknown variant `", "unknown value `");
        self.at(&span, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_lines_and_characters_from_one() {
        let index = LineIndex::new("a = 1\nbé = 2\n");
        assert_eq!(index.position(0), (1, 1));
        assert_eq!(index.position(6), (2, 1));
        // 'é' is two bytes but one column.
        assert_eq!(index.position(9), (2, 3));
        assert_eq!(index.position(999), (3, 1));
    }
}
