//! Finds the line of a field path such as `tunnels[2].health_check.rate` in block-style YAML,
//! for errors found after parsing (when serde's positions are gone).
//!
//! The text is reduced to a list of structural entries: a `- ` sequence item or a `key:`, each
//! with its column. A path segment `key` is looked up among the entries at the column of the
//! mapping's first key (so a deeper key with the same name is not mistaken for it), `[i]` as the
//! i-th `- ` at the column of the sequence's first item. YAML's compact form, where a sequence
//! sits at the same column as its parent key, is understood. Flow collections (`[1, 2]`) and
//! block scalars are opaque: a path into them stops at their key.

/// Finds the line (1-based) of a field path such as `dataplane.ports[1].mtu`. Returns the
/// deepest line found, so a path into a missing field points at its closest parent; `None` if
/// not even the first segment is there.
pub fn locate(text: &str, path: &str) -> Option<usize> {
    let mut segments: Vec<Segment> = Vec::new();
    for part in path.split('.') {
        let (key, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            segments.push(Segment::Key(key));
        }
        for idx in rest.split('[').filter(|s| !s.is_empty()) {
            segments.push(Segment::Index(idx.trim_end_matches(']').parse().ok()?));
        }
    }
    let entries = entries(text);
    let mut found = None;
    // The entries of the node being searched: entries[lo..hi].
    let (mut lo, mut hi) = (0, entries.len());
    for seg in segments {
        let Some(first) = entries.get(lo).filter(|_| lo < hi) else {
            break;
        };
        let column = first.column;
        let hit = match seg {
            Segment::Key(k) => {
                if !matches!(first.node, Node::Key(_)) {
                    break;
                }
                (lo..hi).find(|&j| {
                    entries[j].column == column && matches!(entries[j].node, Node::Key(x) if x == k)
                })
            }
            Segment::Index(i) => {
                if !matches!(first.node, Node::Item) {
                    break;
                }
                (lo..hi)
                    .filter(|&j| entries[j].column == column && entries[j].node == Node::Item)
                    .nth(i)
            }
        };
        let Some(j) = hit else {
            break;
        };
        found = Some(entries[j].line);
        // The node's value runs up to the next entry at a smaller column, or at the same column
        // if it is a sibling (a key after a key, an item after an item; an item after a key is
        // the compact form of the key's sequence value).
        let end = (j + 1..hi)
            .find(|&m| {
                let e = &entries[m];
                e.column < column
                    || (e.column == column
                        && (matches!(e.node, Node::Key(_)) || entries[j].node == Node::Item))
            })
            .unwrap_or(hi);
        (lo, hi) = (j + 1, end);
    }
    found
}

/// The innermost `key:` of one line, with its 0-based column: `  - name: x` gives
/// `(4, "name")`; `None` for a line with no key.
pub(super) fn key_on_line(line: &str) -> Option<(usize, &str)> {
    entries(line).into_iter().rev().find_map(|e| match e.node {
        Node::Key(k) => Some((e.column, k)),
        Node::Item => None,
    })
}

#[derive(Debug, Clone, Copy)]
enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node<'a> {
    /// `- ` starting a sequence item.
    Item,
    /// `key:` of a mapping entry.
    Key(&'a str),
}

#[derive(Debug, Clone, Copy)]
struct Entry<'a> {
    line: usize,
    column: usize,
    node: Node<'a>,
}

/// The structural entries of each line: `- - key: x` gives two items and a key.
fn entries(text: &str) -> Vec<Entry<'_>> {
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let content = strip_comment(raw).trim_end();
        let mut rest = content.trim_start_matches(' ');
        let mut column = content.len() - rest.len();
        while !rest.is_empty() {
            if rest == "-" || rest.starts_with("- ") {
                out.push(Entry {
                    line: n + 1,
                    column,
                    node: Node::Item,
                });
                let after = &rest[1..];
                let value = after.trim_start_matches(' ');
                column += 1 + after.len() - value.len();
                rest = value;
                continue;
            }
            if let Some(key) = key_of(rest) {
                out.push(Entry {
                    line: n + 1,
                    column,
                    node: Node::Key(key),
                });
            }
            break;
        }
    }
    out
}

/// The line without its comment: `#` at the start or after whitespace.
fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

/// The key of `key: value` or `key:`; `None` for a plain value (`10.0.0.1`, `[1, 2]`,
/// `02:00:5e:00:53:01`, where no colon is followed by a space).
fn key_of(s: &str) -> Option<&str> {
    if s.starts_with(['[', '{', '|', '>', '&', '*', '!']) {
        return None;
    }
    let colon = s
        .char_indices()
        .find(|&(i, c)| c == ':' && (s[i + 1..].is_empty() || s[i + 1..].starts_with(' ')))?
        .0;
    let key = s[..colon].trim_end();
    let unquoted = key
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .or_else(|| key.strip_prefix('\'').and_then(|k| k.strip_suffix('\'')));
    Some(unquoted.unwrap_or(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::tests::GOOD;

    #[test]
    fn finds_nested_fields() {
        assert_eq!(locate(GOOD, "dataplane"), Some(1));
        assert_eq!(locate(GOOD, "dataplane.ports"), Some(2));
        assert_eq!(locate(GOOD, "dataplane.ports[0].device"), Some(3));
        assert_eq!(locate(GOOD, "dataplane.ports[1]"), Some(4));
        assert_eq!(locate(GOOD, "dataplane.ports[1].mtu"), Some(5));
        assert_eq!(locate(GOOD, "dataplane.workers"), Some(6));
        assert_eq!(locate(GOOD, "stats.interval_ms"), Some(8));
        // A field that is absent points at its closest parent.
        assert_eq!(locate(GOOD, "dataplane.ports[0].mtu"), Some(3));
        assert_eq!(locate(GOOD, "dataplane.ports[5].mtu"), Some(2));
        // Flow sequences are opaque.
        assert_eq!(locate(GOOD, "dataplane.workers[0]"), Some(6));
        assert_eq!(locate(GOOD, "tunnels[0]"), None);
        assert_eq!(locate(GOOD, ""), None);
    }

    #[test]
    fn deeper_keys_of_the_same_name_are_not_children() {
        let text = "\
tunnels:
  - name: a
    ipsec:
      key_in: x
      spi_in: 1
    health_check:
      rate: high
  - name: b
    spi_in: 2
";
        assert_eq!(locate(text, "tunnels[0].spi_in"), Some(2));
        assert_eq!(locate(text, "tunnels[0].ipsec.spi_in"), Some(5));
        assert_eq!(locate(text, "tunnels[0].health_check.rate"), Some(7));
        assert_eq!(locate(text, "tunnels[1].spi_in"), Some(9));
        assert_eq!(locate(text, "tunnels[1].ipsec"), Some(8));
        // Item 0 ends where item 1 starts: its absent key is not found in item 1.
        assert_eq!(locate(text, "tunnels[0].name"), Some(2));
        assert_eq!(locate(text, "tunnels[1].name"), Some(8));
    }

    #[test]
    fn compact_sequences_comments_and_quotes() {
        let text = "\
# header comment
routes:
- prefix: 10.0.0.0/24   # first
  tunnel: a
-   prefix: 10.0.1.0/24
    \"tunnel\": b
gateway:
  mac: 02:00:5e:00:53:01
  'port': net_ring0 # the: uplink
local_endpoints:
  - 192.0.2.1
  - 192.0.2.2
";
        assert_eq!(locate(text, "routes"), Some(2));
        assert_eq!(locate(text, "routes[0].tunnel"), Some(4));
        assert_eq!(locate(text, "routes[1]"), Some(5));
        assert_eq!(locate(text, "routes[1].prefix"), Some(5));
        assert_eq!(locate(text, "routes[1].tunnel"), Some(6));
        assert_eq!(locate(text, "routes[2]"), Some(2));
        assert_eq!(locate(text, "gateway.mac"), Some(8));
        assert_eq!(locate(text, "gateway.port"), Some(9));
        assert_eq!(locate(text, "local_endpoints[1]"), Some(12));
    }

    #[test]
    fn nested_sequences() {
        let text = "a:\n  - - x: 1\n    - y: 2\n  - - z: 3\n";
        assert_eq!(locate(text, "a[0][1].y"), Some(3));
        assert_eq!(locate(text, "a[1][0].z"), Some(4));
        assert_eq!(locate(text, "a[0][0].x"), Some(2));
    }

    #[test]
    fn keys_and_comments() {
        assert_eq!(key_of("mac: 02:00:5e:00:53:01"), Some("mac"));
        assert_eq!(key_of("ports:"), Some("ports"));
        assert_eq!(key_of("02:00:5e:00:53:01"), None);
        assert_eq!(key_of("[1, 2]"), None);
        assert_eq!(key_of("'a b': 1"), Some("a b"));
        assert_eq!(strip_comment("a: b # c"), "a: b ");
        assert_eq!(strip_comment("a: b#c"), "a: b#c");
        assert_eq!(strip_comment("# c"), "");
    }
}
