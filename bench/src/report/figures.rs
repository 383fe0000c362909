//! The "Figures" table of the report: which figure of which case goes on
//! which line, under which label, read from the data table `figures.md`
//! next to this file, and rendered with each broker's median, its spread
//! and the ratios fleetmq/other.
//!
//! It owns the table and its rendering only; the figures themselves come
//! from the runner's records and the cell formatting from the parent
//! module.

use std::fmt::Write;

use anyhow::{bail, Context, Result};

use super::Report;
use crate::case::Case;
use crate::runner::broker::Kind;

/// The table, one row per report line (see the file for its columns).
const TABLE: &str = include_str!("figures.md");

/// Which way a figure improves: the arrow after its label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Better {
    Higher,
    Lower,
    Neither,
}

impl Better {
    fn arrow(self) -> &'static str {
        match self {
            Better::Higher => " ↑",
            Better::Lower => " ↓",
            Better::Neither => "",
        }
    }
}

/// One line of the table: a figure of a case.
#[derive(Debug)]
struct Row {
    case: Case,
    figure: String,
    label: String,
    better: Better,
}

/// Reads the rows of `figures.md`: the lines of its markdown table after
/// the header and the rule.
fn rows() -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let table = TABLE.lines().filter(|line| line.starts_with('|')).skip(2);
    for line in table {
        let cells: Vec<&str> = line
            .trim_matches('|')
            .split('|')
            .map(|cell| cell.trim())
            .collect();
        let [case, figure, better, label] = cells[..] else {
            bail!("figures.md: not four cells: {line}");
        };
        let case = Case::from_name(case).with_context(|| format!("figures.md: no case {case}"))?;
        let better = match better {
            "↑" => Better::Higher,
            "↓" => Better::Lower,
            "" => Better::Neither,
            other => bail!("figures.md: `better` is ↑, ↓ or empty, not {other}"),
        };
        rows.push(Row {
            case,
            figure: figure.to_string(),
            label: label.to_string(),
            better,
        });
    }
    Ok(rows)
}

impl Report {
    /// Appends the "Figures" section: the table and its legend.
    pub(super) fn figures_section(&self, md: &mut String) -> Result<()> {
        let kinds = self.kinds();
        let others: Vec<Kind> = kinds
            .iter()
            .copied()
            .filter(|k| *k != Kind::Fleetmq)
            .collect();
        let _ = writeln!(md, "## Figures\n");
        let mut header = String::from("| figure |");
        let mut rule = String::from("|---|");
        for kind in &kinds {
            let _ = write!(header, " {kind} |");
            rule.push_str("---:|");
        }
        for other in &others {
            let _ = write!(header, " fleetmq/{other} |");
            rule.push_str("---:|");
        }
        let _ = writeln!(md, "{header}\n{rule}");
        for row in rows()? {
            let case = row.case.name();
            let measured = kinds
                .iter()
                .any(|k| !self.values(*k, case, &row.figure).is_empty())
                || self.records.iter().any(|r| r.case == case);
            if !measured {
                continue;
            }
            let mut line = format!("| {}{} |", row.label, row.better.arrow());
            for kind in &kinds {
                let _ = write!(line, " {} |", self.cell(*kind, case, &row.figure));
            }
            for other in &others {
                let _ = write!(line, " {} |", self.ratio(case, &row.figure, *other));
            }
            let _ = writeln!(md, "{line}");
        }
        let _ = writeln!(md, "\n↑ higher is better, ↓ lower is better.\n");
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn the_table_reads_and_starts_every_case_with_a_headline() {
        let rows = rows().expect("figures.md reads");
        assert_eq!(rows.len(), 99);
        for case in Case::ALL {
            let first = rows.iter().find(|row| row.case == case);
            let first = first.unwrap_or_else(|| panic!("{case} has no row"));
            assert!(!first.label.starts_with("&nbsp;"), "{case}: {first:?}");
        }
    }
}
