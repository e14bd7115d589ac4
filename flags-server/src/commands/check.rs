//! `flags check [FILE]`: validate a config strictly and list every problem.
//!
//! Strict means any problem fails the file, unlike the server's per-flag
//! merge: `check` is what CI runs before a config ships. Overrides from the
//! environment are not applied, so the verdict is about the file alone.
//! FILE is found like every command's config: `$FLAGS_CONFIG`, else
//! `./flags.toml` (`crate::cli`).

use flags_core::{Overrides, compile};

use crate::cli::CheckArgs;
use crate::error::{Error, read_config};

/// Prints a one-line summary when the file is valid; fails with every problem otherwise.
pub fn run(args: &CheckArgs) -> Result<(), Error> {
    let text = read_config(&args.file)?;
    let snapshot = compile(&text, &Overrides::new())
        .map_err(|problems| Error::Invalid(problems.in_file(args.file.display().to_string())))?;
    println!(
        "{}: ok ({} flags, version {})",
        args.file.display(),
        snapshot.len(),
        snapshot.version()
    );
    Ok(())
}
