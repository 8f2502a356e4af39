//! Medians of the rounds and the two tables.

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::{Case, FamilyImpl, Outcome, RuntimeFlavor, Subject, Work, family};

/// Every run of every case on one runtime.
#[derive(Debug, Default)]
pub struct Runs {
    runs: HashMap<(Case, &'static str), Vec<Outcome>>,
}

/// The median time of a case's successful runs, and how many runs failed.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Median µs per unit over the successful runs (`None` when none succeeded).
    pub median_us: Option<f64>,
    /// Runs that succeeded.
    pub ok: usize,
    /// Runs in all.
    pub runs: usize,
    /// The first failure's text.
    pub first_error: Option<String>,
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

impl Runs {
    /// Records one run.
    pub fn add(&mut self, case: Case, runtime: RuntimeFlavor, outcome: Outcome) {
        self.runs
            .entry((case, runtime.name()))
            .or_default()
            .push(outcome);
    }

    /// Every recorded run.
    pub fn all(&self) -> impl Iterator<Item = &Outcome> {
        self.runs.values().flatten()
    }

    /// The summary of `case` on `runtime`.
    pub fn summary(&self, case: Case, runtime: RuntimeFlavor) -> Summary {
        let runs = self
            .runs
            .get(&(case, runtime.name()))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let mut times: Vec<f64> = runs
            .iter()
            .filter(|o| o.ok())
            .map(Outcome::us_per_unit)
            .collect();
        Summary {
            median_us: median(&mut times),
            ok: times.len(),
            runs: runs.len(),
            first_error: runs.iter().find_map(|o| o.error.clone()),
        }
    }

    fn cell(&self, case: Case, runtime: RuntimeFlavor) -> String {
        let s = self.summary(case, runtime);
        let failed = s.runs - s.ok;
        match (s.median_us, failed) {
            (None, _) if s.runs == 0 => "–".to_owned(),
            (None, _) => format!("failed {failed}/{}", s.runs),
            (Some(us), 0) => us_text(us),
            (Some(us), _) => format!("{} (failed {failed}/{})", us_text(us), s.runs),
        }
    }

    /// The workloads table of one runtime; `w2_handlers` is the handler count of the runs' W2
    /// (each W2 message reaches that many handlers), for its per-delivery line.
    pub fn work_table(&self, runtime: RuntimeFlavor, rounds: usize, w2_handlers: u64) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Workloads, {} (µs per message, median of {rounds} interleaved rounds)\n",
            runtime.describe()
        );
        out.push_str("| work |");
        for subject in Subject::ALL {
            let _ = write!(out, " {} |", subject.id());
        }
        out.push_str(" bubus ÷ floor | bubus ÷ fastest peer |\n|---|");
        for _ in 0..Subject::ALL.len() + 2 {
            out.push_str("---|");
        }
        out.push('\n');
        for work in Work::ALL {
            match work {
                // The fan-out is the run's own (100 handlers in --smoke, 10 000 in full runs).
                Work::W2 => {
                    let _ = write!(
                        out,
                        "| W2 fan-out to {w2_handlers} handlers, results collected |"
                    );
                }
                _ => {
                    let _ = write!(out, "| {} |", work.label());
                }
            }
            for subject in Subject::ALL {
                let _ = write!(out, " {} |", self.cell(Case::Work(work, subject), runtime));
            }
            let time = |s: Subject| self.summary(Case::Work(work, s), runtime).median_us;
            let bubus = time(Subject::Bubus);
            let floor = time(Subject::Floor);
            let best_peer = Subject::ALL
                .iter()
                .filter(|s| !matches!(s, Subject::Bubus | Subject::Floor | Subject::FloorRecords))
                .filter_map(|s| time(*s).map(|t| (t, s.id())))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            let _ = write!(out, " {} |", ratio(bubus, floor));
            match best_peer {
                Some((t, id)) => {
                    let _ = writeln!(out, " {} ({id}) |", ratio(bubus, Some(t)));
                }
                None => out.push_str(" – |\n"),
            }
        }
        let per_delivery = |s: Subject| {
            self.summary(Case::Work(Work::W2, s), runtime)
                .median_us
                .map(|us| us * 1000.0)
        };
        if let (Some(bubus), Some(floor), records) = (
            per_delivery(Subject::Bubus),
            per_delivery(Subject::Floor),
            per_delivery(Subject::FloorRecords),
        ) {
            let handlers = w2_handlers.max(1) as f64;
            let _ = writeln!(
                out,
                "\nW2 per delivery (per handler run, over {w2_handlers} handlers): bubus {:.1} ns, \
                 floor {:.1} ns, floor with a result record per handler {}.",
                bubus / handlers,
                floor / handlers,
                records.map_or_else(|| "–".to_owned(), |r| format!("{:.1} ns", r / handlers))
            );
        }
        out
    }

    /// The family table of one runtime.
    pub fn family_table(&self, runtime: RuntimeFlavor, rounds: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Family scenarios, {} (median of {rounds} interleaved rounds)\n",
            runtime.describe()
        );
        out.push_str("| scenario | bubus | abxbus 2.5.79 | abxbus ÷ bubus |\n|---|---|---|---|\n");
        for (index, scenario) in family::SCENARIOS.iter().enumerate() {
            let bubus = Case::Family(index, FamilyImpl::Bubus);
            let abxbus = Case::Family(index, FamilyImpl::Abxbus);
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                scenario.label,
                self.cell(bubus, runtime),
                self.cell(abxbus, runtime),
                ratio(
                    self.summary(abxbus, runtime).median_us,
                    self.summary(bubus, runtime).median_us
                ),
            );
        }
        out
    }
}

/// `0.675`, `45.2`, `2 222`.
pub fn us_text(us: f64) -> String {
    if us >= 1000.0 {
        let whole = us.round() as u64;
        format!("{} {:03}", whole / 1000, whole % 1000)
    } else if us >= 100.0 {
        format!("{us:.0}")
    } else if us >= 10.0 {
        format!("{us:.1}")
    } else if us >= 1.0 {
        format!("{us:.2}")
    } else {
        format!("{us:.3}")
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
        _ => "–".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w2(subject: Subject, total_ms: f64) -> Outcome {
        Outcome {
            case: Case::Work(Work::W2, subject).to_string(),
            runtime: RuntimeFlavor::CurrentThread.name().to_owned(),
            error: None,
            total_ms,
            units: 1,
            unit: "msg".to_owned(),
            checksum: 0,
            expected_checksum: 0,
        }
    }

    #[test]
    fn w2_per_delivery_divides_by_the_runs_handler_count() {
        let mut runs = Runs::default();
        // 1 ms per message: 10 µs per delivery over 100 handlers (the smoke size).
        runs.add(
            Case::Work(Work::W2, Subject::Bubus),
            RuntimeFlavor::CurrentThread,
            w2(Subject::Bubus, 1.0),
        );
        runs.add(
            Case::Work(Work::W2, Subject::Floor),
            RuntimeFlavor::CurrentThread,
            w2(Subject::Floor, 0.1),
        );
        let table = runs.work_table(RuntimeFlavor::CurrentThread, 1, 100);
        assert!(
            table.contains("over 100 handlers): bubus 10000.0 ns, floor 1000.0 ns"),
            "{table}"
        );
        assert!(
            table.contains("| W2 fan-out to 100 handlers, results collected |"),
            "{table}"
        );
        let table = runs.work_table(RuntimeFlavor::CurrentThread, 1, 10_000);
        assert!(table.contains("bubus 100.0 ns, floor 10.0 ns"), "{table}");
    }
}
