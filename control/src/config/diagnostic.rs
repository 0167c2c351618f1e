//! Turns the YAML parser's errors into messages an operator can act on: the position where the
//! mistake is (libyaml's own marks, not a re-scan), plain words instead of Rust type names, and
//! the source line with a caret under the column.
//!
//! libyaml reports some syntax errors where it gave up rather than where the mistake is (an
//! unclosed quote at the end of the file, a missing colon on the next line); its error then
//! carries a context mark ("while scanning a quoted scalar at line 22 column 13"), which is the
//! true place. serde reports a missing or duplicate field at the start of its mapping; the
//! lines of that mapping are then searched for the misindented or repeated key.

use super::locate::key_on_line;

/// The longest field path or message shown; longer ones keep their head and tail, so that a
/// 50 MB garbage file yields an error of a few hundred bytes.
pub const MAX_MESSAGE_CHARS: usize = 400;
/// The longest stretch of a source line shown under a message.
const MAX_SNIPPET_CHARS: usize = 100;

/// libyaml's longest key ("simple key"): it gives up on a longer one as if it had no colon.
const MAX_KEY_CHARS: usize = 1024;

/// A parse error, placed and worded.
pub(super) struct Diagnosis {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub field: String,
    pub message: String,
}

/// Places and words a serde_yaml_ng error raised while deserializing at `field`.
pub(super) fn diagnose(text: &str, field: String, error: &serde_yaml_ng::Error) -> Diagnosis {
    let loc = error.location();
    let mut d = Diagnosis {
        line: loc.as_ref().map(|l| l.line()),
        column: loc.as_ref().map(|l| l.column()),
        field,
        message: String::new(),
    };
    // serde_yaml_ng writes "[path: ]problem[ at line L column C][, context[ at line L column C]]".
    let full = error.to_string();
    let (problem, context) = split_libyaml(&full);
    let mut problem = problem.to_string();
    if let Some((head, rest)) = problem.split_once(": ") {
        if !head.is_empty() && !head.contains(' ') && d.field.starts_with(head) {
            problem = rest.to_string();
        }
    }
    let syntax = context.is_some() || is_syntax_problem(&problem);
    d.message = match problem.as_str() {
        "found unexpected end of stream" if context.is_some_and(|c| c.0.contains("quoted")) => {
            move_to(&mut d, context);
            "a quoted value is never closed (its quote opens here)".to_string()
        }
        "could not find expected ':'" => {
            move_to(&mut d, context);
            // libyaml gives up on a key after 1024 characters, colon or not.
            let long = d
                .line
                .and_then(|l| text.lines().nth(l - 1))
                .is_some_and(|src| {
                    let start = d.column.unwrap_or(1) - 1;
                    src.get(start..).is_some_and(|k| {
                        k.len() > MAX_KEY_CHARS && !k[..MAX_KEY_CHARS].contains(": ")
                    })
                });
            if long {
                "a key longer than YAML's limit of 1024 characters".to_string()
            } else {
                "a key without its colon: write `key: value`".to_string()
            }
        }
        "mapping values are not allowed in this context" => {
            "a `: ` inside a plain value: quote the value, or check the indentation".to_string()
        }
        "did not find expected key" | "did not find expected '-' indicator" => {
            "this line's indentation matches no enclosing mapping or list".to_string()
        }
        _ => reword(&problem),
    };
    let tab = tab_in_indent(text, d.line);
    if let Some(col) = tab {
        d.column = Some(col);
        d.message = "a tab in the indentation: YAML indents with spaces only".to_string();
    }
    if syntax || tab.is_some() {
        // The path is where deserializing stood, which may be a field or two before the error.
        if let Some(line) = d.line.and_then(|l| text.lines().nth(l - 1)) {
            let on_line = key_on_line(line).map(|(_, k)| k);
            let last = d.field.rsplit('.').next().unwrap_or("");
            if !line.starts_with([' ', '\t']) {
                // A line at the left margin is a section of its own (unless its key is the
                // overlong one).
                d.field = on_line
                    .filter(|k| k.len() <= MAX_KEY_CHARS)
                    .unwrap_or("")
                    .to_string();
            } else if !last.ends_with(']') && Some(last) != on_line {
                let cut = d.field.rfind('.').unwrap_or(0);
                d.field.truncate(cut);
            }
            let body = line.trim_start();
            if tab.is_none() && body.starts_with('-') && !body.starts_with("- ") && body != "-" {
                d.message = "a list dash must be followed by a space: `- `".to_string();
            }
        }
    } else if let Some(name) = quoted_name(&problem, "missing field `") {
        if let Some((l, c, how)) = misplaced_key(text, d.line, d.column, name) {
            (d.line, d.column) = (Some(l), Some(c));
            d.message = format!("{} ({how})", d.message);
        }
    } else if let Some(name) = quoted_name(&problem, "duplicate field `") {
        if let Some((l, c)) = second_key(text, d.line, d.column, name) {
            (d.line, d.column) = (Some(l), Some(c));
            d.field = join(&d.field, name);
            d.message = format!("`{name}` is given twice");
        }
    } else if let Some(hint) = continued_value(text, d.line, d.column) {
        d.message = format!("{} ({hint})", d.message);
    }
    if let Some(line) = d.line.and_then(|l| text.lines().nth(l - 1)) {
        if let Some(open) = unclosed_bracket(line) {
            d.message = format!("{} (the `{open}` on this line is not closed)", d.message);
        }
    }
    d
}

/// The `[` or `{` of a flow collection left open at the end of `line` (quotes and comments
/// aside), which YAML continues on the following lines.
fn unclosed_bracket(line: &str) -> Option<char> {
    let mut stack = Vec::new();
    let mut quote = None;
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') if i == 0 || line[..i].ends_with([' ', '\t']) => break,
            (None, '[' | '{') => stack.push(c),
            (None, ']' | '}') => {
                stack.pop();
            }
            _ => {}
        }
    }
    stack.pop()
}

/// Splits serde_yaml_ng's text into the problem and the context with its position.
fn split_libyaml(full: &str) -> (&str, Option<(&str, usize, usize)>) {
    let Some(i) = full.find(" at line ") else {
        return (full, None);
    };
    let problem = &full[..i];
    let rest = &full[i..];
    let context = rest.split_once(", ").and_then(|(_, ctx)| {
        let (what, at) = ctx.split_once(" at line ")?;
        let (l, c) = at.split_once(" column ")?;
        Some((what, l.trim().parse().ok()?, c.trim().parse().ok()?))
    });
    (problem, context)
}

fn move_to(d: &mut Diagnosis, context: Option<(&str, usize, usize)>) {
    if let Some((_, l, c)) = context {
        (d.line, d.column) = (Some(l), Some(c));
    }
}

fn is_syntax_problem(p: &str) -> bool {
    p.starts_with("found ")
        || p.starts_with("did not find")
        || p.starts_with("could not find")
        || p.starts_with("mapping values")
        || p.starts_with("block sequence entries")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn quoted_name<'a>(problem: &'a str, prefix: &str) -> Option<&'a str> {
    problem.strip_prefix(prefix)?.strip_suffix('`')
}

/// The 1-based column of a tab in the leading whitespace of line `line`.
fn tab_in_indent(text: &str, line: Option<usize>) -> Option<usize> {
    let src = text.lines().nth(line? - 1)?;
    let indent = src.len() - src.trim_start_matches([' ', '\t', '-']).len();
    src[..indent].find('\t').map(|i| i + 1)
}

/// The lines of the block mapping whose first key is at (`line`, `column`), 1-based: each
/// `(line, indent, key)`, up to the first line indented less than its keys. The first line
/// outside is included too, as a misindented key ends the mapping early.
fn mapping_keys(text: &str, line: usize, column: usize) -> Vec<(usize, usize, &str)> {
    let indent = column - 1;
    let mut out = Vec::new();
    for (n, src) in text.lines().enumerate().skip(line - 1) {
        let body = src.trim_start_matches(' ');
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        let Some((col, key)) = key_on_line(src) else {
            if n + 1 > line && src.len() - body.len() <= indent {
                break;
            }
            continue;
        };
        let ind = if n + 1 == line { indent } else { col };
        out.push((n + 1, ind, key));
        if n + 1 > line && src.len() - body.len() < indent {
            break;
        }
    }
    out
}

/// A key `name` near the mapping at (`line`, `column`) but at another indentation: where it
/// is and why it was not read as this mapping's.
fn misplaced_key(
    text: &str,
    line: Option<usize>,
    column: Option<usize>,
    name: &str,
) -> Option<(usize, usize, String)> {
    let (line, column) = (line?, column?);
    let indent = column - 1;
    let (l, ind, _) = mapping_keys(text, line, column)
        .into_iter()
        .find(|&(_, ind, k)| k == name && ind != indent)?;
    Some((
        l,
        ind + 1,
        format!(
            "`{name}:` on line {l} is indented {ind} spaces, the other fields of this mapping {indent}"
        ),
    ))
}

/// The second `name:` among the keys of the mapping at (`line`, `column`).
fn second_key(
    text: &str,
    line: Option<usize>,
    column: Option<usize>,
    name: &str,
) -> Option<(usize, usize)> {
    let (line, column) = (line?, column?);
    mapping_keys(text, line, column)
        .into_iter()
        .filter(|&(_, ind, k)| k == name && ind == column - 1)
        .nth(1)
        .map(|(l, ind, _)| (l, ind + 1))
}

/// A plain value at (`line`, `column`) that runs on to the next line because that line is
/// indented deeper than the key: usually a field indented too far.
fn continued_value(text: &str, line: Option<usize>, column: Option<usize>) -> Option<String> {
    let (line, column) = (line?, column?);
    let src = text.lines().nth(line - 1)?;
    let (key_col, key) = key_on_line(src)?;
    if column <= key_col + key.len() + 1 {
        return None;
    }
    let next = text.lines().nth(line)?;
    let body = next.trim_start_matches(' ');
    let ind = next.len() - body.len();
    if body.is_empty() || body.starts_with('#') || ind <= key_col {
        return None;
    }
    Some(format!(
        "the value runs on to line {}, indented deeper than `{key}:`: check its indentation",
        line + 1
    ))
}

/// serde's wording, with Rust type names replaced by words.
pub(super) fn reword(message: &str) -> String {
    let Some((head, expected)) = message.rsplit_once(", expected ") else {
        return message.replace("invalid type: map", "invalid type: mapping");
    };
    let head = head.replace("invalid type: map", "invalid type: mapping");
    let words = match expected {
        "u8" => "an integer 0..=255".to_string(),
        "u16" => "an integer 0..=65535".to_string(),
        "u32" => "an integer 0..=4294967295".to_string(),
        "u64" | "usize" => "a non-negative integer".to_string(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".to_string(),
        "f32" | "f64" => "a number".to_string(),
        "a sequence" => "a list".to_string(),
        e if e.starts_with("struct ") || e == "a map" => {
            let hint = if head.contains("string") {
                " (is a colon missing after a key?)"
            } else {
                ""
            };
            format!("a mapping of `key: value` fields{hint}")
        }
        e if e.starts_with("enum ") => "one of the names listed in the documentation".to_string(),
        e => e.to_string(),
    };
    format!("{head}, expected {words}")
}

/// `s` itself if at most `max` characters, else its head and tail around a note of how much
/// was cut.
pub(super) fn cut(s: &str, max: usize) -> std::borrow::Cow<'_, str> {
    let n = s.chars().count();
    if n <= max {
        return s.into();
    }
    let head: String = s.chars().take(max * 2 / 3).collect();
    let tail: String = s.chars().skip(n - max / 4).collect();
    format!(
        "{head}…[{} characters cut]…{tail}",
        n - max * 2 / 3 - max / 4
    )
    .into()
}

/// The source line `line` (1-based) of `text`, a window of it if long, with a caret under
/// `column` if known (else under the line's first non-blank character):
///
/// ```text
///    |
/// 22 |     remote: "198.51.100.2
///    |             ^
/// ```
///
/// Key material on the line is masked character for character ([`super::ipsec::mask_line`]),
/// so that no error ever prints an SA key and the caret stays in place.
pub(super) fn snippet(text: &str, line: usize, column: Option<usize>) -> Option<String> {
    let src = text.lines().nth(line.checked_sub(1)?)?;
    let src = super::ipsec::mask_line(src);
    let chars: Vec<char> = src.chars().collect();
    let caret = column.map_or_else(
        || chars.iter().take_while(|c| c.is_whitespace()).count(),
        |c| c.saturating_sub(1),
    );
    let caret = caret.min(chars.len());
    let start = caret.saturating_sub(MAX_SNIPPET_CHARS / 2);
    let end = (start + MAX_SNIPPET_CHARS).min(chars.len());
    let mut shown: String = chars[start..end].iter().collect();
    let mut at = caret - start;
    if start > 0 {
        shown.insert(0, '…');
        at += 1;
    }
    if end < chars.len() {
        shown.push('…');
    }
    // Tabs would move the caret; show them as one space each.
    let shown = shown.replace('\t', " ");
    let num = line.to_string();
    let pad = " ".repeat(num.len());
    Some(format!(
        "{pad} |\n{num} | {shown}\n{pad} | {}^",
        " ".repeat(at)
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::tests::GOOD;
    use crate::config::Config;

    fn error(text: &str) -> String {
        match Config::parse(text, Path::new("test.yaml")) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_huge_garbage_file_gives_a_short_error() {
        // One 8 MB line of junk: YAML reads it as a single string.
        let junk: String = (0..8_000_000u32)
            .map(|i| char::from(b'a' + (i.wrapping_mul(2_654_435_761) >> 27) as u8 % 26))
            .collect();
        let e = error(&junk);
        assert!(e.len() < 1000, "{} bytes: {}", e.len(), &e[..1000]);
        assert!(
            e.starts_with("test.yaml:1:1: invalid type: string \""),
            "{e}"
        );
        assert!(e.contains("characters cut]"), "{e}");
        // The tail that says what was wrong survives the cut.
        let first = e.lines().next().unwrap();
        assert!(
            first.ends_with(
                "expected a mapping of `key: value` fields (is a colon missing after a key?)"
            ),
            "{first}"
        );
    }

    #[test]
    fn a_huge_unknown_key_is_cut_in_field_and_line() {
        let key = "k".repeat(1_000_000);
        let e = error(&format!("{GOOD}{key}: 1\n"));
        assert!(e.len() < 1000, "{} bytes", e.len());
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(
            lines[0],
            "test.yaml:9:1: a key longer than YAML's limit of 1024 characters"
        );
        assert!(
            lines[2].starts_with("9 | kkk") && lines[2].ends_with("kkk…"),
            "{e}"
        );
        assert_eq!(lines[3], "  | ^", "{e}");
        // Below that limit it is an unknown field, cut in the path and the message.
        let key = "k".repeat(1000);
        let e = error(&format!("{GOOD}{key}: 1\n"));
        assert!(e.len() < 1500, "{} bytes: {e}", e.len());
        assert!(e.starts_with("test.yaml:9:1: kkkk"), "{e}");
        assert!(e.contains("characters cut]…kkk"), "{e}");
        assert!(e.contains("kkk: unknown field `kkk"), "{e}");
        assert!(e.contains("`reassembly`, `stats`\n"), "{e}");
    }

    #[test]
    fn snippet_windows_a_long_line_around_the_caret() {
        // Not hex digits: long hex runs are masked as possible keys.
        let line = format!("{}X{}", "p".repeat(500), "q".repeat(500));
        let s = snippet(&line, 1, Some(501)).unwrap();
        let rows: Vec<&str> = s.lines().collect();
        assert_eq!(rows[0], "  |");
        let caret = rows[2].find('^').unwrap();
        assert_eq!(rows[1].chars().nth(caret), Some('X'), "{s}");
        assert!(
            rows[1].starts_with("1 | …p") && rows[1].ends_with("q…"),
            "{s}"
        );
        assert!(rows[1].chars().count() < MAX_SNIPPET_CHARS + 10);
    }

    #[test]
    fn cut_keeps_short_text_and_both_ends_of_long_text() {
        assert_eq!(cut("short", 10), "short");
        let long = format!("{}{}", "h".repeat(300), "t".repeat(300));
        let c = cut(&long, 100);
        assert!(
            c.starts_with(&"h".repeat(66)) && c.ends_with(&"t".repeat(25)),
            "{c}"
        );
        assert!(c.contains("…[509 characters cut]…"), "{c}");
    }

    #[test]
    fn no_rust_type_names_in_type_errors() {
        let burst = |v: &str| {
            GOOD.replace(
                "  workers: [1]\n",
                &format!("  workers: [1]\n  burst: {v}\n"),
            )
        };
        let cases = [
            (burst("lots"), "dataplane.burst: invalid type: string \"lots\", expected an integer 0..=65535"),
            (burst("{a: 1}"), "dataplane.burst: invalid type: mapping, expected an integer 0..=65535"),
            (burst("-3"), "dataplane.burst: invalid type: integer `-3`, expected an integer 0..=65535"),
            (GOOD.replace("device: net_ring0", "device: [a]"), "dataplane.ports[0].device: invalid type: sequence, expected a string"),
            (GOOD.replace("device: net_ring0\n", "device: net_ring0\n      rss: maybe\n"), "dataplane.ports[0].rss: invalid type: string \"maybe\", expected a boolean"),
            (format!("{GOOD}icmp: 5\n"), "icmp: invalid type: integer `5`, expected a mapping of `key: value` fields"),
            (format!("{GOOD}routes: 7\n"), "routes: invalid type: integer `7`, expected a list"),
            (format!("{GOOD}routes: [{{prefix: 10.0.0.0/8, tunnel: t, priority: x}}]\n"), "routes[0].priority: invalid type: string \"x\", expected an integer 0..=4294967295"),
        ];
        for (text, want) in cases {
            let e = error(&text);
            let first = e.lines().next().unwrap();
            assert!(first.ends_with(want), "{first}\nwanted: {want}");
        }
    }

    #[test]
    fn tabs_are_named_wherever_they_indent() {
        for (from, to, at) in [
            ("\n  workers", "\n\tworkers", "test.yaml:6:1: "),
            (
                "\n    - device: net_ring1",
                "\n\t- device: net_ring1",
                "test.yaml:4:1: ",
            ),
            ("\n      mtu", "\n    \t  mtu", "test.yaml:5:5: "),
        ] {
            let e = error(&GOOD.replacen(from, to, 1));
            let first = e.lines().next().unwrap();
            assert!(first.starts_with(at), "{e}");
            assert!(
                first.ends_with(": a tab in the indentation: YAML indents with spaces only"),
                "{e}"
            );
        }
    }
}
