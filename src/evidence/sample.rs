//! An auditor's sample of terminations: repeatable from the seed alone.
//!
//! Each termination is ranked by SHA-256 of `seed`, provider, user and enrolment (one per
//! line, joined by `\n`), and the `n` lowest ranks are drawn. The draw depends on nothing but
//! the seed and the rows themselves — not on the platform, the order of the logs or a random
//! generator's version — so an auditor can re-draw it, even by hand with `sha256sum`, and a
//! row keeps its rank when the log grows.

use super::Format;
use super::table::{self, Row};
use super::terminations::Termination;
use super::trail::{Trail, TrailRecord};
use serde::Serialize;
use std::fmt::Write;

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Drawn {
    /// 1 for the lowest rank.
    pub draw: usize,
    /// Lower-case hex SHA-256 of the row's draw key.
    pub rank: String,
    #[serde(flatten)]
    pub termination: Termination,
    /// Every line about this enrolment up to its revocation, as written.
    pub audit_lines: Vec<QuotedLine>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct QuotedLine {
    /// `file:line`.
    pub record: String,
    pub line: String,
}

/// The text hashed for a row's rank.
pub fn draw_key(seed: &str, t: &Termination) -> String {
    format!("{seed}\n{}\n{}\n{}", t.provider, t.user, t.enrolment)
}

/// Draws `n` of `population` (all of them if there are fewer), lowest rank first.
pub fn draw(population: &[Termination], n: usize, seed: &str, trail: &Trail) -> Vec<Drawn> {
    let mut ranked: Vec<(String, &Termination)> =
        population.iter().map(|t| (crate::audit::sha256_hex(draw_key(seed, t).as_bytes()), t)).collect();
    ranked.sort_by(|a, b| a.0.cmp(&b.0));
    ranked
        .into_iter()
        .take(n)
        .enumerate()
        .map(|(i, (rank, t))| Drawn { draw: i + 1, rank, termination: t.clone(), audit_lines: lines_of(trail, t) })
        .collect()
}

/// The records of the termination's enrolment written up to and including its outcome
/// record: the intent, any blocked or failed attempt, the revocation.
fn lines_of(trail: &Trail, t: &Termination) -> Vec<QuotedLine> {
    let about = |r: &&TrailRecord| r.provider == t.provider && r.user == t.user && r.enrolment == t.enrolment;
    let mut quoted = Vec::new();
    for r in trail.records.iter().filter(about) {
        let record = r.at.to_string();
        let last = record == t.record;
        quoted.push(QuotedLine { record, line: r.text.clone() });
        if last {
            break;
        }
    }
    quoted
}

/// What the draw was made from, for its heading.
pub struct Drawing<'a> {
    pub seed: &'a str,
    pub population: usize,
    pub period: &'a super::period::Period,
    pub drawn: &'a [Drawn],
}

impl Row for Drawn {
    fn cells(&self) -> Vec<(&'static str, String)> {
        let mut cells = vec![("draw", self.draw.to_string()), ("rank", self.rank.clone())];
        cells.extend(self.termination.cells());
        let lines: Vec<String> = self.audit_lines.iter().map(|l| format!("{} {}", l.record, l.line)).collect();
        cells.push(("audit_lines", lines.join("\n")));
        cells
    }
}

impl Drawing<'_> {
    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => {
                let value = serde_json::json!({
                    "seed": self.seed,
                    "population": self.population,
                    "period_from": self.period.from,
                    "period_to": self.period.to,
                    "method": METHOD,
                    "drawn": self.drawn,
                });
                serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
            }
            Format::Csv => table::csv(self.drawn),
            Format::Markdown => self.markdown(),
        }
    }

    /// The drawn rows as a table without their audit lines, then each row's lines verbatim.
    fn markdown(&self) -> String {
        let mut out = format!(
            "# Sample of terminations\n\n{} of {} termination(s) recorded from {}, drawn with seed `{}`. {METHOD}\n\n",
            self.drawn.len(),
            self.population,
            self.period.label(),
            self.seed.replace('`', "'"),
        );
        let rows: Vec<SampleTableRow> = self.drawn.iter().map(|d| SampleTableRow(d.clone())).collect();
        out.push_str(&table::markdown(&rows));
        for d in self.drawn {
            let t = &d.termination;
            let _ = write!(out, "\n### {}. {} {} {}\n\n```\n", d.draw, t.provider, t.user, t.enrolment);
            for line in &d.audit_lines {
                let _ = writeln!(out, "{}", line.record);
                let _ = writeln!(out, "{}", line.line);
            }
            out.push_str("```\n");
        }
        out
    }
}

/// How the sample was drawn, said in every output.
const METHOD: &str = "Each termination's rank is the SHA-256 of the seed, provider, user and enrolment, one per line joined by a newline; the lowest ranks are drawn.";

/// A drawn row without its audit lines (the Markdown table; the lines follow it).
#[derive(Default)]
struct SampleTableRow(Drawn);

impl Row for SampleTableRow {
    fn cells(&self) -> Vec<(&'static str, String)> {
        let mut cells = self.0.cells();
        cells.retain(|(name, _)| *name != "audit_lines");
        cells
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::period::Period;
    use crate::evidence::terminations::{Deadlines, terminations};
    use crate::evidence::trail;
    use std::path::PathBuf;

    fn log(people: usize) -> String {
        (0..people)
            .flat_map(|i| {
                [
                    format!(
                        r#"{{"time":"2026-11-10T10:{:02}:00Z","event":"intent","provider":"acme/corp-pi","user":"u{i:02}","enrolment":"T{i:02}","kind":"totp","reason":"EmployeeOffboarded"}}"#,
                        i % 60
                    ),
                    format!(
                        r#"{{"time":"2026-11-10T10:{:02}:01Z","provider":"acme/corp-pi","user":"u{i:02}","enrolment":"T{i:02}","kind":"totp","reason":"EmployeeOffboarded","outcome":"revoked"}}"#,
                        i % 60
                    ),
                ]
            })
            .map(|l| l + "\n")
            .collect()
    }

    fn sample(text: &str, n: usize, seed: &str) -> Vec<Drawn> {
        let trail = trail::read(&[(PathBuf::from("audit.jsonl"), text.to_string())]);
        let population = terminations(
            &trail,
            &Period::new(None, None).expect("open"),
            chrono::Duration::hours(1),
            &Deadlines::default(),
        );
        draw(&population, n, seed, &trail)
    }

    fn users(drawn: &[Drawn]) -> Vec<String> {
        drawn.iter().map(|d| d.termination.user.clone()).collect()
    }

    #[test]
    fn the_same_seed_draws_the_same_sample_and_another_seed_another() {
        let text = log(40);
        let first = sample(&text, 25, "SOC2-2026-Q4");
        assert_eq!(first.len(), 25);
        assert_eq!(users(&first), users(&sample(&text, 25, "SOC2-2026-Q4")));
        assert_ne!(users(&first), users(&sample(&text, 25, "SOC2-2027-Q1")));
        let mut distinct = users(&first);
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 25, "no row drawn twice");
        assert!(first.windows(2).all(|w| w[0].rank < w[1].rank), "lowest rank first");
        assert_eq!(sample(&text, 100, "x").len(), 40, "a sample larger than the population is all of it");
    }

    #[test]
    fn the_draw_is_pinned_and_independent_of_log_order() {
        let text = log(40);
        // Pinned: a change to the ranking (or to SHA-256's use) would change samples already
        // handed to auditors.
        assert_eq!(users(&sample(&text, 3, "SOC2-2026-Q4")), pinned());
        let reversed: String = text.lines().rev().map(|l| format!("{l}\n")).collect();
        assert_eq!(users(&sample(&reversed, 3, "SOC2-2026-Q4")), pinned());
        let rank = crate::audit::sha256_hex(b"SOC2-2026-Q4\nacme/corp-pi\nu00\nT00");
        let all = sample(&text, 40, "SOC2-2026-Q4");
        assert_eq!(all.iter().find(|d| d.termination.user == "u00").map(|d| d.rank.clone()), Some(rank));
    }

    fn pinned() -> Vec<String> {
        PINNED.iter().map(|s| s.to_string()).collect()
    }
    /// Drawn by hand, as an auditor would check it: for i in 00..39,
    /// `printf 'SOC2-2026-Q4\nacme/corp-pi\nu%s\nT%s' $i $i | sha256sum`, lowest three.
    const PINNED: [&str; 3] = ["u21", "u19", "u18"];

    #[test]
    fn a_drawn_row_quotes_its_audit_lines_exactly() {
        let text = log(2);
        let drawn = sample(&text, 2, "s");
        let u01 = drawn.iter().find(|d| d.termination.user == "u01").expect("u01 drawn");
        let quoted: Vec<&str> = u01.audit_lines.iter().map(|l| l.record.as_str()).collect();
        assert_eq!(quoted, ["audit.jsonl:3", "audit.jsonl:4"]);
        assert_eq!(u01.audit_lines[1].line, text.lines().nth(3).expect("line 4"));
    }
}
