//! Evaluates one flag from a `flags.toml` the way a Rust service would:
//! compile once, build a context, evaluate.
//!
//! ```text
//! cargo run -p flags-core --example evaluate -- flags.toml new-checkout alice country=US
//! ```
//! Arguments: config file, flag key, targeting key, then `name=value`
//! attributes (numbers and `true`/`false` are typed, anything else is a string).

use std::process::ExitCode;

use flags_core::{AttrValue, Context, Overrides, Reason, compile};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path, flag, key, attrs @ ..] = args.as_slice() else {
        eprintln!("usage: evaluate CONFIG FLAG KEY [name=value ...]");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let snapshot = match compile(&text, &Overrides::from_env()) {
        Ok(snapshot) => snapshot,
        Err(problems) => {
            eprintln!("{}", problems.in_file(path.as_str()));
            return ExitCode::FAILURE;
        }
    };
    let mut ctx = Context::with_key(key);
    for attr in attrs {
        let Some((name, value)) = attr.split_once('=') else {
            eprintln!("attribute `{attr}` is not name=value");
            return ExitCode::from(2);
        };
        ctx.set(name, typed(value));
    }
    let result = snapshot.evaluate(flag, &ctx);
    match serde_json::to_string_pretty(&result) {
        Ok(json) => println!("{json}"),
        Err(e) => eprintln!("{e}"),
    }
    if result.reason == Reason::Error {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn typed(value: &str) -> AttrValue<'_> {
    match value {
        "true" => AttrValue::Bool(true),
        "false" => AttrValue::Bool(false),
        _ => value
            .parse::<f64>()
            .map_or(AttrValue::Str(value), AttrValue::Num),
    }
}
