//! A file as `---`-separated YAML documents, and the line of a field inside one of them.

// serde_yaml reports lines only for errors, so the line of a field that is well-formed but
// wrong (a dangling reference, a duplicate) is found again in the text: a search for each key
// of the field's path in turn, from the object's line to the end of its document. It is a
// heuristic (YAML is not parsed again), and it falls back to the last line it found.

/// One document of a file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Document<'a> {
    /// The document's text, without its separators.
    pub text: &'a str,
    /// File line (1-based) of the first line of `text`.
    pub first_line: usize,
    /// Byte offset of `text` in the file.
    pub offset: usize,
}

impl Document<'_> {
    /// File line of the first line that is neither blank nor a comment; `None` for an empty
    /// document.
    pub fn content_line(&self) -> Option<usize> {
        self.text.lines().position(|l| !is_blank(l)).map(|i| self.first_line + i)
    }

    /// File line of a line of `text` counted from 1 (as serde_yaml counts), kept inside the
    /// document: libyaml places some errors just past its end.
    pub fn file_line(&self, relative: usize) -> usize {
        let last = self.first_line + self.text.lines().count().saturating_sub(1);
        (self.first_line + relative.saturating_sub(1)).min(last)
    }
}

fn is_blank(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#')
}

/// A line that is exactly `---`, optionally followed by whitespace and a comment.
fn is_separator(line: &str) -> bool {
    let line = line.trim_end_matches(['\n', '\r']);
    match line.strip_prefix("---") {
        Some("") => true,
        Some(rest) if rest.starts_with([' ', '\t']) => {
            let rest = rest.trim();
            rest.is_empty() || rest.starts_with('#')
        }
        _ => false,
    }
}

/// Splits a file into its documents; empty ones are kept (their lines still count).
pub(crate) fn split(file: &str) -> Vec<Document<'_>> {
    let mut documents = Vec::new();
    let (mut start, mut first_line, mut offset, mut line) = (0, 1, 0, 1);
    for text in file.split_inclusive('\n') {
        if is_separator(text) {
            documents.push(Document { text: &file[start..offset], first_line, offset: start });
            start = offset + text.len();
            first_line = line + 1;
        }
        offset += text.len();
        line += 1;
    }
    documents.push(Document { text: &file[start..], first_line, offset: start });
    documents
}

/// One step of a field's path, for [`Outline::line`].
#[derive(Clone, Copy, Debug)]
pub(crate) enum Step<'a> {
    /// A mapping key.
    Key(&'a str),
    /// The `n`-th (0-based) occurrence of a scalar value, e.g. one item of a list.
    Value(&'a str, usize),
}

/// A file's text prepared for finding fields: comments blanked out, lines and documents indexed.
pub(crate) struct Outline {
    /// The text with every comment replaced by spaces, so offsets and lines are unchanged.
    masked: String,
    /// Byte offset of the start of each line.
    line_starts: Vec<usize>,
    /// (first line, start offset, end offset) of each document.
    documents: Vec<(usize, usize, usize)>,
}

impl Outline {
    pub fn new(text: &str) -> Self {
        let masked = mask_comments(text);
        let mut line_starts = vec![0];
        line_starts.extend(masked.match_indices('\n').map(|(i, _)| i + 1));
        let documents = split(&masked).iter().map(|d| (d.first_line, d.offset, d.offset + d.text.len())).collect();
        Outline { masked, line_starts, documents }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&start| start <= offset).max(1)
    }

    /// Byte range from the start of `line` to the end of the document holding it.
    fn range_from(&self, line: usize) -> (usize, usize) {
        let line = line.max(1);
        let index = self.documents.partition_point(|&(first, _, _)| first <= line).saturating_sub(1);
        let end = self.documents.get(index).map_or(self.masked.len(), |&(_, _, end)| end);
        let start = self.line_starts.get(line - 1).copied().unwrap_or(end).min(end);
        (start, end)
    }

    /// The line of the field at `path`, searched from `from_line` (an object's line) to the end
    /// of its document. Stops at the first step not found and answers the last line found.
    pub fn line(&self, from_line: usize, path: &[Step<'_>]) -> usize {
        let (mut at, end) = self.range_from(from_line);
        let mut line = from_line;
        for step in path {
            let found = match *step {
                Step::Key(key) => find_key(&self.masked, at, end, key),
                Step::Value(value, n) => find_value(&self.masked, at, end, value, n),
            };
            match found {
                Some((start, after)) => {
                    line = self.line_of(start);
                    at = after;
                }
                None => break,
            }
        }
        line
    }

    /// The lines of the items of the block sequence under `items:` in the document holding
    /// `from_line`; fewer than the items (even none) when the list is not a plain block list.
    pub fn item_lines(&self, from_line: usize) -> Vec<usize> {
        let (at, end) = self.range_from(from_line);
        let Some((_, after)) = find_key(&self.masked, at, end, "items") else {
            return Vec::new();
        };
        let mut lines = Vec::new();
        let mut indent = None;
        let first = self.line_of(after) + 1;
        for (number, text) in self.masked[after.min(end)..end].split('\n').skip(1).enumerate() {
            let trimmed = text.trim_start_matches(' ');
            if trimmed.trim().is_empty() {
                continue;
            }
            let column = text.len() - trimmed.len();
            let is_item = trimmed == "-" || trimmed.starts_with("- ") || trimmed.starts_with("-\t") || trimmed == "-\r";
            match indent {
                None if is_item => indent = Some(column),
                None => break,
                Some(i) if column < i || (column == i && !is_item) => break,
                Some(_) => {}
            }
            if is_item && indent == Some(column) {
                lines.push(first + number);
            }
        }
        lines
    }
}

/// Replaces comments (`#` at a line start or after whitespace, outside quotes) with spaces.
fn mask_comments(text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let mut quote = None;
    let mut previous = b'\n';
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match (quote, b) {
            (_, b'\n') => quote = None,
            (None, b'"' | b'\'') if previous.is_ascii_whitespace() || b"[{,:".contains(&previous) => quote = Some(b),
            (Some(q), _) if b == q => quote = None,
            (None, b'#') if previous.is_ascii_whitespace() => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    bytes[i] = b' ';
                    i += 1;
                }
                previous = b' ';
                continue;
            }
            _ => {}
        }
        previous = b;
        i += 1;
    }
    // Only whole characters (from `#` to the line end) were replaced, so this is still UTF-8.
    String::from_utf8(bytes).unwrap_or_else(|_| text.to_string())
}

fn before(text: &str, at: usize) -> Option<char> {
    text.get(..at).and_then(|t| t.chars().next_back())
}

/// Strips a quote right before `start` and its twin right after `end`, if both are there.
fn unquote(text: &str, start: usize, end: usize) -> (usize, usize, bool) {
    match before(text, start) {
        Some(q @ ('"' | '\'')) if text.get(end..).is_some_and(|t| t.starts_with(q)) => (start - 1, end + 1, true),
        _ => (start, end, false),
    }
}

fn opens_token(c: Option<char>) -> bool {
    c.is_none_or(|c| c.is_whitespace() || matches!(c, '{' | '[' | ',' | ':'))
}

/// `key:` as a mapping key, block or flow style, plain or quoted.
fn find_key(text: &str, from: usize, end: usize, key: &str) -> Option<(usize, usize)> {
    if key.is_empty() {
        return None;
    }
    let window = text.get(from..end)?;
    window.match_indices(key).find_map(|(i, _)| {
        let (start, after, quoted) = unquote(text, from + i, from + i + key.len());
        if !opens_token(before(text, start)) || after > end {
            return None;
        }
        let rest = text[after..end].trim_start_matches([' ', '\t']);
        let colon = rest.strip_prefix(':')?;
        (quoted || colon.is_empty() || colon.starts_with(char::is_whitespace)).then_some((start, after))
    })
}

/// The `n`-th occurrence of `value` as a scalar (not a key), plain or quoted.
fn find_value(text: &str, from: usize, end: usize, value: &str, n: usize) -> Option<(usize, usize)> {
    if value.is_empty() {
        return None;
    }
    let window = text.get(from..end)?;
    let mut found = window.match_indices(value).filter_map(|(i, _)| {
        let (start, after, quoted) = unquote(text, from + i, from + i + value.len());
        if !opens_token(before(text, start)) || after > end {
            return None;
        }
        let rest = &text[after..end];
        let closes = rest.chars().next().is_none_or(|c| c.is_whitespace() || matches!(c, ',' | ']' | '}'));
        let is_key = !quoted && {
            let r = rest.trim_start_matches([' ', '\t']);
            r.strip_prefix(':').is_some_and(|c| c.is_empty() || c.starts_with(char::is_whitespace))
        };
        (closes && !is_key).then_some((start, after))
    });
    found.nth(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_separator_lines_only() {
        let text = "a: 1\n---\nb: 2\n--- # next\n\n# only a comment\n---\nc: |\n  ---\n  x\n";
        let docs = split(text);
        let lines: Vec<_> = docs.iter().map(|d| (d.first_line, d.content_line())).collect();
        assert_eq!(lines, vec![(1, Some(1)), (3, Some(3)), (5, None), (8, Some(8))]);
        assert!(!is_separator("---x\n"));
        assert!(!is_separator("--- {a: b}\n"));
        assert!(is_separator("---\r\n"));
    }

    #[test]
    fn file_line_stays_inside_the_document() {
        let docs = split("a: 1\n---\nb: 2\nc: 3\n---\nd: 4\n");
        assert_eq!(docs[1].file_line(2), 4);
        assert_eq!(docs[1].file_line(3), 4);
        assert_eq!(docs[1].file_line(0), 3);
    }

    #[test]
    fn finds_keys_and_values_along_a_path() {
        let text = "\
kind: Employee # email: not here
metadata: {name: alice}
spec:
  email: a@b.c
  identities:
  - {provider: pi, username: x}
  - provider: 'pi'
    username: y
---
spec:
  email: other
";
        let outline = Outline::new(text);
        assert_eq!(outline.line(1, &[Step::Key("spec"), Step::Key("email")]), 4);
        assert_eq!(outline.line(1, &[Step::Key("metadata"), Step::Key("name")]), 2);
        assert_eq!(outline.line(1, &[Step::Key("spec"), Step::Key("identities"), Step::Value("pi", 0)]), 6);
        assert_eq!(outline.line(1, &[Step::Key("spec"), Step::Key("identities"), Step::Value("pi", 1)]), 7);
        // Not found: the last line found, never a line of the next document.
        assert_eq!(outline.line(1, &[Step::Key("spec"), Step::Key("roles")]), 3);
        assert_eq!(outline.line(10, &[Step::Key("spec"), Step::Key("email")]), 11);
    }

    #[test]
    fn finds_the_items_of_a_block_list() {
        let text =
            "apiVersion: v1\nkind: List\nitems:\n- kind: A\n  x: [1]\n\n- kind: B\n  # - not an item\nmetadata: {}\n";
        assert_eq!(Outline::new(text).item_lines(1), vec![4, 7]);
        let indented = "items:\n  - a: 1\n    b: 2\n  - a: 3\n";
        assert_eq!(Outline::new(indented).item_lines(1), vec![2, 4]);
        assert!(Outline::new("items: [{a: 1}]\n").item_lines(1).is_empty());
    }
}
