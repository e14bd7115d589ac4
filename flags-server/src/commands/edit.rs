//! `flags kill FLAG` and `flags revive FLAG`: flip a flag's `enabled` in the
//! file itself, keeping every comment and the layout.
//!
//! The edit goes through `toml_edit`, which keeps the document as written;
//! only the `enabled` value changes (its trailing comment survives), or the
//! key is added when missing, in the style of the flag's table (an inline
//! table keeps its spacing). Reviving a flag without an `enabled` key
//! changes nothing: absent means enabled. An edit is refused only for the
//! problems it would add; problems already in the file are printed as
//! warnings and the edit is written, so a kill works on a file that someone
//! else broke. The write is atomic: a temporary file in the same directory,
//! fsync, rename over the original (then fsync of the directory), so a
//! watching server sees either the old file or the new one. A symlinked
//! config is edited at its target, keeping the link. Not here: runtime
//! kills through a server (`remote`).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write as _;
use std::path::Path;

use flags_core::{Diagnostic, Diagnostics, Overrides, Section, compile};
use toml_edit::{DocumentMut, InlineTable, Item, Key, Value};

use crate::cli::EditArgs;
use crate::error::{Error, read_config};

/// Sets `enabled` of `args.flag` and rewrites the file if that changes it.
pub fn run(args: &EditArgs, enabled: bool) -> Result<(), Error> {
    if let Some(server) = &args.server {
        return super::remote::run(server, &args.flag, enabled, args.reason.as_deref());
    }
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
    let already = problems_kept(&text, &edited)
        .map_err(|added| Error::WouldBreak(added.in_file(file.clone())))?;
    write_atomically(&path, edited.as_bytes())?;
    for problem in &already {
        eprintln!("warning: {file}:{problem}");
    }
    if !already.is_empty() {
        eprintln!(
            "warning: {} problem(s) above were in {file} before this edit; written all the same",
            already.len()
        );
    }
    println!("{}: {state} in {file}", args.flag);
    Ok(())
}

/// The problems of `edited` (positions as in `edited`) if each was already
/// in `original`; otherwise `Err` with only the problems the edit adds.
///
/// Problems are matched by section, name and message, not position: adding
/// `enabled` moves every line below it.
fn problems_kept(original: &str, edited: &str) -> Result<Vec<Diagnostic>, Diagnostics> {
    let problems = |text| compile(text, &Overrides::new()).err().unwrap_or_default();
    let mut before: HashMap<_, usize> = HashMap::new();
    let original = problems(original);
    for d in &original.items {
        *before.entry(identity(d)).or_default() += 1;
    }
    let (kept, added): (Vec<Diagnostic>, Vec<Diagnostic>) =
        problems(edited).items.into_iter().partition(|d| {
            before
                .get_mut(&identity(d))
                .filter(|n| **n > 0)
                .map(|n| *n -= 1)
                .is_some()
        });
    Diagnostics::result(kept, added)
}

/// What a problem is about, wherever it is.
fn identity(d: &Diagnostic) -> (Option<Section>, Option<String>, String) {
    (d.section, d.name.clone(), d.message.clone())
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
    let item = document
        .get_mut("flags")
        .and_then(Item::as_table_like_mut)
        .and_then(|flags| flags.get_mut(flag))
        .filter(|item| item.is_table_like())
        .ok_or_else(|| Error::UnknownFlag(flag.to_string()))?;
    let current = item.get("enabled").map(Item::as_bool);
    // An absent `enabled` means enabled.
    if current.unwrap_or(Some(true)) == Some(enabled) {
        return Ok(None);
    }
    match item.get_mut("enabled").and_then(Item::as_value_mut) {
        Some(value) => {
            // Keep the whitespace and comments around the old value.
            let decor = value.decor().clone();
            *value = enabled.into();
            *value.decor_mut() = decor;
        }
        None => match item {
            Item::Value(Value::InlineTable(table)) => append_in_style(table, enabled),
            table => {
                if let Some(table) = table.as_table_like_mut() {
                    table.insert("enabled", toml_edit::value(enabled));
                }
            }
        },
    }
    Ok(Some(document.to_string()))
}

/// Appends `enabled = <enabled>` to an inline table written as the table
/// writes its entries: the spacing around `=` of its last entry, the
/// spacing after a comma of its second (or first) entry, and the space
/// before the closing brace moved to the new last entry.
fn append_in_style(table: &mut InlineTable, enabled: bool) {
    let mut key = Key::new("enabled");
    let mut value = Value::from(enabled);
    let names: Vec<String> = table.iter().map(|(name, _)| name.to_string()).collect();
    if let (Some(first), Some(last)) = (names.first(), names.last()) {
        let after_comma = names.get(1).unwrap_or(first);
        if let Some(last_key) = table.key(last) {
            *key.leaf_decor_mut() = last_key.leaf_decor().clone();
        }
        if let Some(prefix) = table
            .key(after_comma)
            .and_then(|k| k.leaf_decor().prefix().cloned())
        {
            key.leaf_decor_mut().set_prefix(prefix);
        }
        if let Some(last_value) = table.get_mut(last) {
            *value.decor_mut() = last_value.decor().clone();
            last_value.decor_mut().set_suffix("");
        }
    }
    table.insert_formatted(&key, value);
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
    fn a_kill_added_to_an_inline_table_follows_its_spacing() {
        for (flag, written, killed) in [
            (
                "x = { description = \"X\" }",
                "x",
                "x = { description = \"X\", enabled = false }",
            ),
            (
                "x = {description=\"X\"}",
                "x",
                "x = {description=\"X\",enabled=false}",
            ),
            (
                "x = { description = \"X\",  default = \"off\" }  # two",
                "x",
                "x = { description = \"X\",  default = \"off\",  enabled = false }  # two",
            ),
            (
                "x = { enabled = true, default = \"on\" }",
                "x",
                "x = { enabled = false, default = \"on\" }",
            ),
            ("x = {}", "x", "x = { enabled = false }"),
        ]
        .map(|(line, flag, killed)| (flag, format!("version = 1\n[flags]\n{line}\n"), killed))
        {
            let edited = set_enabled(&written, flag, false).unwrap().unwrap();
            assert_eq!(
                edited,
                written.replace(written.lines().nth(2).unwrap(), killed)
            );
            assert!(compile(&edited, &Overrides::new()).is_ok(), "{edited}");
        }
        let dotted = "version = 1\nflags.x = { description = \"X\" }\n";
        assert_eq!(
            set_enabled(dotted, "x", false).unwrap().unwrap(),
            "version = 1\nflags.x = { description = \"X\", enabled = false }\n"
        );
    }

    #[test]
    fn reviving_a_flag_without_an_enabled_key_changes_nothing() {
        assert_eq!(set_enabled(TEXT, "b", true).unwrap(), None);
        let inline = "version = 1\n[flags]\nx = { description = \"X\" }\n";
        assert_eq!(set_enabled(inline, "x", true).unwrap(), None);
    }

    #[test]
    fn problems_already_in_the_file_are_kept_as_warnings_new_ones_refuse() {
        let broken = "version = 1\n[flags.a]\n[flags.bad]\n[[flags.bad.rules]]\nserve = \"nope\"\n";
        let killed = set_enabled(broken, "a", false).unwrap().unwrap();
        let kept = problems_kept(broken, &killed).unwrap();
        assert_eq!(kept.len(), 1);
        assert!(kept[0].is_about_flag("bad"), "{kept:?}");
        assert_eq!(kept[0].line, 6, "positions are the edited file's");

        // An edit that adds a problem is refused with that problem alone,
        // also when it is the same as one the file already had.
        let worse = format!("{killed}[[flags.bad.rules]]\nserve = \"nope\"\n");
        let added = problems_kept(broken, &worse).unwrap_err();
        assert_eq!(added.items.len(), 1, "{added}");
        assert_eq!(added.items[0].line, 8, "{added}");
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
