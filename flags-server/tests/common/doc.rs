//! Running a walk-through of docs/ as written: its fenced blocks, its
//! commands run through `sh` with the built `flags` first on `PATH` and the
//! test server's address in place of the doc's `:8080`, and its shown
//! outputs matched with `...` gaps. What each doc's blocks mean (which is
//! the config, what output a block shows) is up to the test that reads it.

use std::path::Path;
use std::process::{Command, Output};

use super::BIN;

/// A fenced block of a doc: its language and its lines.
pub struct Block {
    pub language: String,
    pub lines: Vec<String>,
}

/// The fenced blocks of `markdown`, in order.
pub fn blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for line in markdown.lines() {
        match (line.strip_prefix("```"), open.take()) {
            (Some(language), None) => {
                open = Some(Block {
                    language: language.to_string(),
                    lines: Vec::new(),
                });
            }
            (Some(_), Some(block)) => blocks.push(block),
            (None, Some(mut block)) => {
                block.lines.push(line.to_string());
                open = Some(block);
            }
            (None, None) => {}
        }
    }
    blocks
}

/// Whether `text` is `pattern`, where each `...` stands for anything.
pub fn matches(pattern: &str, text: &str) -> bool {
    let pieces: Vec<&str> = pattern.split("...").collect();
    let (first, last) = (pieces[0], pieces[pieces.len() - 1]);
    if pieces.len() == 1 {
        return text == pattern;
    }
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for piece in &pieces[1..pieces.len() - 1] {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// `text` with the doc's server address (`localhost:8080` or
/// `127.0.0.1:8080`) replaced by `host`, the test server's.
pub fn at_host(text: &str, host: &str) -> String {
    text.replace("localhost:8080", host)
        .replace("127.0.0.1:8080", host)
}

/// `sh -ec commands` in `dir`, with the built `flags` first on PATH, no
/// `FLAGS_*` variable inherited, and the doc's server address replaced by
/// `host`; to be spawned or run.
pub fn sh_command(commands: &str, dir: &Path, host: &str) -> Command {
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    let mut command = Command::new("sh");
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("FLAGS_")) {
        command.env_remove(name);
    }
    command
        .args(["-ec", &at_host(commands, host)])
        .current_dir(dir)
        .env("PATH", path);
    command
}

/// Runs `commands` as [`sh_command`] does, to the end; what it printed.
pub fn sh(commands: &str, dir: &Path, host: &str) -> Output {
    sh_command(commands, dir, host).output().unwrap()
}

/// A command of a terminal session shown in a `text` block (`$ ` and its
/// `\` continuation lines), and the output shown after it, up to the next
/// `$ `.
pub struct Prompt {
    pub command: String,
    pub shown: String,
}

/// The commands of a `text` block written as a terminal session.
pub fn prompts(block: &Block) -> Vec<Prompt> {
    let mut prompts: Vec<Prompt> = Vec::new();
    let mut continued = false;
    for line in &block.lines {
        if let Some(command) = line.strip_prefix("$ ") {
            prompts.push(Prompt {
                command: command.to_string(),
                shown: String::new(),
            });
        } else {
            let prompt = prompts
                .last_mut()
                .unwrap_or_else(|| panic!("output before any command: {line}"));
            if continued {
                prompt.command.push('\n');
                prompt.command.push_str(line);
            } else {
                prompt.shown.push_str(line);
                prompt.shown.push('\n');
            }
        }
        continued = line.ends_with('\\') && (continued || line.starts_with("$ "));
    }
    prompts
}
