//! Sections as tables: Markdown for people, CSV for spreadsheets. (JSON comes from the rows'
//! `Serialize`; a test holds the two to the same column names.)

use std::fmt::Write;

/// A row as named cells, in column order.
pub trait Row: Default {
    fn cells(&self) -> Vec<(&'static str, String)>;

    /// The column names, from an empty row: no second list to keep in step with `cells`.
    fn columns() -> Vec<&'static str> {
        Self::default().cells().into_iter().map(|(name, _)| name).collect()
    }
}

pub fn opt(value: &Option<String>) -> String {
    value.clone().unwrap_or_default()
}

/// A Markdown table, or `_None._` for no rows.
pub fn markdown<R: Row>(rows: &[R]) -> String {
    if rows.is_empty() {
        return "_None._\n".to_string();
    }
    let columns = R::columns();
    let mut out = format!("| {} |\n|{}\n", columns.join(" | "), "---|".repeat(columns.len()));
    for row in rows {
        let cells: Vec<String> = row.cells().into_iter().map(|(_, value)| markdown_cell(&value)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

/// Two columns, for key–value sections (provenance).
pub fn markdown_pairs(pairs: &[(String, String)]) -> String {
    let mut out = "| | |\n|---|---|\n".to_string();
    for (key, value) in pairs {
        let _ = writeln!(out, "| {} | {} |", markdown_cell(key), markdown_cell(value));
    }
    out
}

fn markdown_cell(value: &str) -> String {
    value.replace('\\', "\\\\").replace('|', "\\|").replace("\r\n", "<br>").replace('\n', "<br>")
}

/// RFC 4180 CSV with a header line (the header alone for no rows).
pub fn csv<R: Row>(rows: &[R]) -> String {
    let mut out = csv_line(R::columns().into_iter().map(str::to_string));
    for row in rows {
        out.push_str(&csv_line(row.cells().into_iter().map(|(_, value)| value)));
    }
    out
}

pub fn csv_pairs(pairs: &[(String, String)]) -> String {
    let mut out = csv_line(["key".to_string(), "value".to_string()].into_iter());
    for (key, value) in pairs {
        out.push_str(&csv_line([key.clone(), value.clone()].into_iter()));
    }
    out
}

fn csv_line(cells: impl Iterator<Item = String>) -> String {
    let cells: Vec<String> = cells.map(|c| csv_cell(&c)).collect();
    cells.join(",") + "\r\n"
}

fn csv_cell(value: &str) -> String {
    // Provider data (user names, error texts) reaches a spreadsheet: a cell a spreadsheet
    // would run as a formula is kept as text (OWASP "CSV injection").
    let formula =
        value.starts_with(['=', '+', '@', '\t', '\r']) || (value.starts_with('-') && value.parse::<f64>().is_err());
    let value = if formula { format!("'{value}") } else { value.to_string() };
    if value.contains([',', '"', '\n', '\r']) { format!("\"{}\"", value.replace('"', "\"\"")) } else { value }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Pair(&'static str, &'static str);
    impl Row for Pair {
        fn cells(&self) -> Vec<(&'static str, String)> {
            vec![("user", self.0.to_string()), ("detail", self.1.to_string())]
        }
    }

    #[test]
    fn cells_are_escaped_for_each_format() {
        let rows =
            [Pair("a|b", "line one\nline two"), Pair("=HYPERLINK(\"x\")", "-42"), Pair("-rm", "say \"hi\", then go")];
        assert_eq!(
            markdown(&rows),
            "| user | detail |\n|---|---|\n| a\\|b | line one<br>line two |\n| =HYPERLINK(\"x\") | -42 |\n| -rm | say \"hi\", then go |\n"
        );
        assert_eq!(
            csv(&rows),
            "user,detail\r\na|b,\"line one\nline two\"\r\n\"'=HYPERLINK(\"\"x\"\")\",-42\r\n'-rm,\"say \"\"hi\"\", then go\"\r\n"
        );
        assert_eq!(markdown::<Pair>(&[]), "_None._\n");
        assert_eq!(csv::<Pair>(&[]), "user,detail\r\n");
    }
}
