//! The fast path for the bodies nearly every client sends: one flat
//! `context` object of unescaped strings, numbers, booleans and nulls.
//!
//! A body of any other shape (escapes, lists, nested objects, members other
//! than `context`, anything malformed) is left to the serde path in the
//! parent module, which answers every body and reports every error, so this
//! scanner never has to explain a failure, only recognise success. It reads
//! exactly what the serde path would read; a property test in the parent
//! checks that on generated bodies. It exists because the serde visitors cost
//! about a tenth of a single-flag HTTP request under load
//! (docs/benchmarks.md, "HTTP server").

use std::borrow::Cow;

use super::{Attribute, RequestBody, TARGETING_KEY, Text};

/// The body read by the fast path, or `None` when it is not of its shape.
pub(super) fn scan(text: &str) -> Option<RequestBody<'_>> {
    let mut scanner = Scanner { text, pos: 0 };
    let mut body = RequestBody::default();
    scanner.expect(b'{')?;
    if !scanner.eat(b'}') {
        loop {
            if scanner.string()? != "context" {
                return None;
            }
            scanner.expect(b':')?;
            body = if scanner.literal("null") {
                RequestBody::default()
            } else {
                scanner.context()?
            };
            if !scanner.eat(b',') {
                break;
            }
        }
        scanner.expect(b'}')?;
    }
    scanner.skip_whitespace();
    (scanner.pos == text.len()).then_some(body)
}

struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    /// The members of a `context` object.
    fn context(&mut self) -> Option<RequestBody<'a>> {
        let mut body = RequestBody::default();
        self.expect(b'{')?;
        if self.eat(b'}') {
            return Some(body);
        }
        loop {
            let name = self.string()?;
            self.expect(b':')?;
            if name == TARGETING_KEY {
                body.key = if self.literal("null") {
                    None
                } else {
                    Some(text(self.string()?))
                };
            } else {
                body.attributes.push((text(name), self.scalar()?));
            }
            if !self.eat(b',') {
                break;
            }
        }
        self.expect(b'}')?;
        Some(body)
    }

    fn scalar(&mut self) -> Option<Attribute<'a>> {
        self.skip_whitespace();
        match self.bytes().get(self.pos)? {
            b'"' => self.string().map(|s| Attribute::Str(text(s))),
            b't' if self.literal("true") => Some(Attribute::Bool(true)),
            b'f' if self.literal("false") => Some(Attribute::Bool(false)),
            b'n' if self.literal("null") => Some(Attribute::Null),
            b'-' | b'0'..=b'9' => self.number().map(Attribute::Num),
            _ => None,
        }
    }

    /// A string without escapes or control characters, borrowed.
    fn string(&mut self) -> Option<&'a str> {
        self.expect(b'"')?;
        let start = self.pos;
        let len = self.bytes()[start..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        self.pos = start + len;
        self.expect_here(b'"')?;
        // Quotes are ASCII, so both ends fall on character boundaries.
        Some(&self.text[start..start + len])
    }

    /// A JSON number, read to the same f64 as serde_json reads it: integers
    /// as a u64 magnitude, negated (so `-0` is -0.0), the rest correctly
    /// rounded (the workspace enables serde_json's `float_roundtrip`).
    /// Out-of-range numbers are left to serde_json, which rejects them.
    fn number(&mut self) -> Option<f64> {
        let start = self.pos;
        self.eat_here(b'-');
        match self.bytes().get(self.pos)? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        let mut integer = true;
        if self.eat_here(b'.') {
            integer = false;
            self.some_digits()?;
        }
        if self.eat_here(b'e') || self.eat_here(b'E') {
            integer = false;
            let _ = self.eat_here(b'+') || self.eat_here(b'-');
            self.some_digits()?;
        }
        let literal = &self.text[start..self.pos];
        let negative = literal.starts_with('-');
        let exact = match integer {
            true => literal[usize::from(negative)..].parse::<u64>().ok(),
            false => None,
        };
        let exact = exact.map(|n| if negative { -(n as f64) } else { n as f64 });
        let value = exact.or_else(|| literal.parse::<f64>().ok())?;
        value.is_finite().then_some(value)
    }

    fn digits(&mut self) {
        let bytes = self.bytes();
        while bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.pos;
        self.digits();
        (self.pos > start).then_some(())
    }

    /// Consumes `word` (after whitespace) if it comes next.
    fn literal(&mut self, word: &str) -> bool {
        self.skip_whitespace();
        let found = self.text[self.pos..].starts_with(word);
        if found {
            self.pos += word.len();
        }
        found
    }

    /// Consumes `byte` (after whitespace) if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        self.skip_whitespace();
        self.eat_here(byte)
    }

    fn eat_here(&mut self, byte: u8) -> bool {
        let found = self.bytes().get(self.pos) == Some(&byte);
        self.pos += usize::from(found);
        found
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    fn expect_here(&mut self, byte: u8) -> Option<()> {
        self.eat_here(byte).then_some(())
    }

    fn skip_whitespace(&mut self) {
        let bytes = self.bytes();
        while matches!(bytes.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }
}

fn text(s: &str) -> Text<'_> {
    Text(Cow::Borrowed(s))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::parse_any;
    use super::scan;

    /// What a reading produced, exactly (`-0.0` and `0.0` differ here).
    fn reading(text: &str) -> Option<String> {
        scan(text).map(|body| format!("{body:?}"))
    }

    #[test]
    fn flat_contexts_take_the_fast_path_and_read_as_serde_reads_them() {
        for body in [
            r#"{"context":{"targetingKey":"user-1","country":"US","plan":"pro"}}"#,
            " {\n\t\"context\" : { \"targetingKey\" : null , \"a\" : -0 , \"b\" : 1.5e3 } }\r\n",
            r#"{"context":{"n":18446744073709551616,"m":-9223372036854775809,"x":0.1}}"#,
            r#"{"context":{"city":"Zürich","日本":"東京","t":true,"f":false,"z":null}}"#,
            r#"{"context":{"a":1,"a":2,"targetingKey":"k","targetingKey":"j"}}"#,
            r#"{"context":{}}"#,
            r#"{"context":null}"#,
            r#"{"context":{"a":1},"context":{"b":2}}"#,
            "{}",
        ] {
            let expected = format!("{:?}", parse_any(body).unwrap());
            assert_eq!(reading(body), Some(expected), "{body}");
        }
    }

    #[test]
    fn other_shapes_and_errors_are_left_to_serde() {
        for body in [
            r#"{"context":{"a":"x\"y"}}"#,
            r#"{"context":{"a\n":1}}"#,
            "{\"context\":{\"a\":\"tab\there\"}}",
            r#"{"context":{"roles":["a"]}}"#,
            r#"{"context":{"address":{"city":"Paris"}}}"#,
            r#"{"context":{"targetingKey":7}}"#,
            r#"{"other":1,"context":{}}"#,
            r#"{"context":"x"}"#,
            r#"{"context":{"a":1e400}}"#,
            r#"{"context":{"a":01}}"#,
            r#"{"context":{"a":1.}}"#,
            r#"{"context":{"a":-}}"#,
            r#"{"context":{"a":.5}}"#,
            r#"{"context":{"a":nullx}}"#,
            r#"{"context":{"a":1,}}"#,
            r#"{"context":{}} x"#,
            r#"{"context":{}"#,
            "[1]",
        ] {
            assert_eq!(reading(body), None, "{body}");
        }
    }

    fn whitespace() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["", " ", "\n\t", "\r\n  "])
    }

    /// Values a flat context may hold, all of which the fast path reads.
    fn flat_value() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9 é日/._-]{0,8}".prop_map(|s| format!("\"{s}\"")),
            "-?(0|[1-9][0-9]{0,22})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,2})?",
            prop::sample::select(vec!["true", "false", "null"]).prop_map(String::from),
        ]
    }

    /// Anything at all in a value's place, valid or not.
    fn any_value() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => flat_value(),
            1 => "\"[a-z\\\\\"\n\t]{0,6}\"",
            1 => "-?[0-9.eE+-]{0,6}",
            1 => prop::sample::select(vec![
                "[1,\"a\"]", "{\"x\":1}", "nul", "truex", "1e400", "-0", "\"", "",
            ])
            .prop_map(String::from),
        ]
    }

    fn name() -> impl Strategy<Value = String> {
        prop_oneof![Just("targetingKey".to_string()), "[a-c]{1,2}"]
    }

    fn body_of(members: Vec<(String, String)>, ws: &str) -> String {
        let members: Vec<String> = members
            .iter()
            .map(|(name, value)| format!("{ws}\"{name}\"{ws}:{ws}{value}{ws}"))
            .collect();
        format!(
            "{ws}{{{ws}\"context\"{ws}:{ws}{{{}}}{ws}}}{ws}",
            members.join(",")
        )
    }

    proptest! {
        // About one generated body in seven is flat; this many cases
        // compare a few hundred fast readings with serde's.
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn whatever_the_fast_path_reads_serde_reads_the_same(
            members in prop::collection::vec((name(), any_value()), 0..6),
            ws in whitespace(),
            tail in prop::sample::select(vec!["", "", "", "x", ",", "}"]),
        ) {
            let body = body_of(members, ws) + tail;
            if let Some(fast) = reading(&body) {
                let reference = parse_any(&body).map(|b| format!("{b:?}"));
                prop_assert_eq!(Ok(fast), reference, "{}", body);
            }
        }

        #[test]
        fn every_flat_context_takes_the_fast_path(
            members in prop::collection::vec(("[a-z]{1,6}", flat_value()), 0..8),
            key in prop::option::of("[a-z0-9-]{0,12}"),
            ws in whitespace(),
        ) {
            let mut members = members;
            if let Some(key) = key {
                members.push(("targetingKey".into(), format!("\"{key}\"")));
            }
            let body = body_of(members, ws);
            let reference = parse_any(&body).map(|b| format!("{b:?}"));
            // Numbers beyond f64's range are errors for serde_json too.
            if reference.is_ok() {
                prop_assert_eq!(reading(&body).ok_or(()), reference.map_err(|_| ()), "{}", body);
            }
        }
    }
}
