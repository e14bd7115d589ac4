//! `flags kill FLAG` and `flags revive FLAG`: flip a flag's `enabled` in the
//! file itself, keeping every comment and the layout.
//!
//! The edit goes through `toml_edit`, which keeps the document as written;
//! only the `enabled` value changes (its trailing comment survives), or the
//! key is added when missing. The result must compile before anything is
//! written, and it is written atomically: a temporary file in the same
//! directory, fsync, rename over the original (then fsync of the directory),
//! so a watching server sees either the old file or the new one. A
//! symlinked config is edited at its target, keeping the link.

use std::fs::File;
use std::io::Write as _;
use std::path::Path;

use flags_core::{Overrides, compile};
use toml_edit::{DocumentMut, Item};

use crate::cli::EditArgs;
use crate::error::{Error, read_config};

/// Sets `enabled` of `args.flag` and rewrites the file if that changes it.
pub fn run(args: &EditArgs, enabled: bool) -> Result<(), Error> {
    let path = std::fs::canonicalize(&args.config).map_err(|e| Error::io(&args.config, e))?;
    let file = args.config.display().to_string();
    let text = read_config(&path)?;
    let state = if enabled {
        "enabled"
    } else {
        "disabled (killed)"
    };
    let Some(edited) = set_enabled(&text, &args.flag, enabled)? else {
        println!("{}: already {state}; {file} unchanged", args.flag);
        return Ok(());
    };
    compile(&edited, &Overrides::new())
        .map_err(|problems| Error::WouldBreak(problems.in_file(file.clone())))?;
    write_atomically(&path, edited.as_bytes())?;
    println!("{}: {state} in {file}", args.flag);
    Ok(())
}

/// The document with `flags.<flag>.enabled = enabled`, or `None` if it already says so.
fn set_enabled(text: &str, flag: &str, enabled: bool) -> Result<Option<String>, Error> {
    let mut document: DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        // Prefer the compiler's report, which has the same positions as `flags check`.
        match compile(text, &Overrides::new()) {
            Err(problems) => Error::Invalid(problems),
            Ok(_) => Error::Usage(format!("cannot edit this file: {e}")),
        }
    })?;
    let table = document
        .get_mut("flags")
        .and_then(Item::as_table_like_mut)
        .and_then(|flags| flags.get_mut(flag))
        .and_then(Item::as_table_like_mut)
        .ok_or_else(|| Error::UnknownFlag(flag.to_string()))?;
    let current = table.get("enabled").map(|item| item.as_bool());
    // An absent `enabled` means enabled.
    if current.unwrap_or(Some(true)) == Some(enabled) {
        return Ok(None);
    }
    match table.get_mut("enabled").and_then(Item::as_value_mut) {
        Some(value) => {
            // Keep the whitespace and comments around the old value.
            let decor = value.decor().clone();
            *value = enabled.into();
            *value.decor_mut() = decor;
        }
        None => {
            table.insert("enabled", toml_edit::value(enabled));
        }
    }
    Ok(Some(document.to_string()))
}

/// Replaces `path` with `bytes` so that readers see the old or the new file, never a mix.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |e| Error::io(path, e);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".flags-edit-")
        .tempfile_in(dir)
        .map_err(io)?;
    temp.write_all(bytes).map_err(io)?;
    let permissions = std::fs::metadata(path).map_err(io)?.permissions();
    temp.as_file().set_permissions(permissions).map_err(io)?;
    temp.as_file().sync_all().map_err(io)?;
    temp.persist(path).map_err(|e| io(e.error))?;
    // The rename is durable only once the directory is synced.
    File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "version = 1\n# the flags\n[flags.a] # first\nenabled = true   # on for now\ndescription = \"A\"\n\n[flags.b]\n[[flags.b.rules]]\nserve = \"on\"\n";

    #[test]
    fn flipping_keeps_comments_and_trailing_decor() {
        let killed = set_enabled(TEXT, "a", false).unwrap().unwrap();
        assert_eq!(
            killed,
            TEXT.replace("enabled = true   #", "enabled = false   #")
        );
    }

    #[test]
    fn a_missing_key_is_added_to_the_flags_own_table() {
        let killed = set_enabled(TEXT, "b", false).unwrap().unwrap();
        assert!(
            killed.contains("[flags.b]\nenabled = false\n[[flags.b.rules]]"),
            "{killed}"
        );
        assert!(compile(&killed, &Overrides::new()).is_ok());
    }

    #[test]
    fn no_change_when_already_in_that_state() {
        assert_eq!(set_enabled(TEXT, "a", true).unwrap(), None);
        assert_eq!(set_enabled(TEXT, "b", true).unwrap(), None);
    }

    #[test]
    fn inline_tables_are_edited_too() {
        let text = "version = 1\n[flags]\nx = { description = \"X\" }\n";
        let killed = set_enabled(text, "x", false).unwrap().unwrap();
        assert!(killed.contains("enabled = false"), "{killed}");
        assert!(compile(&killed, &Overrides::new()).is_ok(), "{killed}");
    }

    #[test]
    fn unknown_flags_and_broken_files_are_errors() {
        assert!(matches!(
            set_enabled(TEXT, "zz", false),
            Err(Error::UnknownFlag(_))
        ));
        assert!(matches!(
            set_enabled("version = 1\n[flags.a\n", "a", false),
            Err(Error::Invalid(_))
        ));
    }
}
