//! Metric paths a gate can name (`test.overall.micro_f1`, `cost.train_seconds`) and how
//! each is read from a run's metrics.

use crate::results::RunMetrics;


/// Which way is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Higher,
    Lower,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Overall,
    Seen,
    Unseen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetMeasure {
    MicroF1,
    MicroPrecision,
    MicroRecall,
    /// Macro-F1 over the codes in the split's gold labels, the tables' `macro-F1`.
    MacroF1,
    /// Macro-F1 over codes with TP+FP+FN > 0.
    MacroF1Nonzero,
    ExactMatch,
}

const SET_MEASURES: &[(&str, SetMeasure)] = &[
    ("micro_f1", SetMeasure::MicroF1),
    ("micro_precision", SetMeasure::MicroPrecision),
    ("micro_recall", SetMeasure::MicroRecall),
    ("macro_f1", SetMeasure::MacroF1),
    ("macro_f1_nonzero", SetMeasure::MacroF1Nonzero),
    ("exact_match", SetMeasure::ExactMatch),
];

const COST_FIELDS: &[&str] = &[
    "train_seconds",
    "input_tokens",
    "padded_tokens",
    "estimated_flops",
    "optimizer_steps",
    "examples",
    "peak_rss_bytes",
    "peak_gpu_memory_bytes",
    "tokens_per_second",
];

/// A metric a gate can name: `<split>.<overall|seen|unseen>.<measure>`, `<split>.evidence.<exact_f1|overlap_f1>`
/// or `cost.<field>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Metric {
    Set { split: String, part: Part, measure: SetMeasure },
    Evidence { split: String, overlap: bool },
    Cost { field: &'static str },
}

impl Metric {
    pub fn parse(name: &str) -> Result<Metric, String> {
        let parts: Vec<&str> = name.split('.').collect();
        let measures = || SET_MEASURES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ");
        match parts.as_slice() {
            ["cost", field] => match COST_FIELDS.iter().find(|f| *f == field) {
                Some(f) => Ok(Metric::Cost { field: f }),
                None => Err(format!("unknown cost field {field:?}; use one of {}", COST_FIELDS.join(", "))),
            },
            [split, part, measure] => {
                if crate::data::Split::parse_scored(split).is_none() {
                    return Err(format!("unknown split {split:?}; use train, val or test (as in `{split}.overall.micro_f1`)"));
                }
                let split = split.to_string();
                if *part == "evidence" {
                    return match *measure {
                        "exact_f1" => Ok(Metric::Evidence { split, overlap: false }),
                        "overlap_f1" => Ok(Metric::Evidence { split, overlap: true }),
                        _ => Err(format!("unknown evidence measure {measure:?}; use exact_f1 or overlap_f1")),
                    };
                }
                let part = match *part {
                    "overall" => Part::Overall,
                    "seen" => Part::Seen,
                    "unseen" => Part::Unseen,
                    _ => return Err(format!("unknown part {part:?}; use overall, seen, unseen or evidence")),
                };
                match SET_MEASURES.iter().find(|(n, _)| n == measure) {
                    Some((_, m)) => Ok(Metric::Set { split, part, measure: *m }),
                    None => Err(format!("unknown measure {measure:?}; use one of {}", measures())),
                }
            }
            _ => Err("expected `<split>.<overall|seen|unseen>.<measure>` (e.g. test.overall.micro_f1), \
                      `<split>.evidence.<exact_f1|overlap_f1>` or `cost.<field>` (e.g. cost.train_seconds)"
                .into()),
        }
    }

    /// Scores are fractions shown in F1 points; a cost is in its own units.
    pub fn is_score(&self) -> bool {
        !matches!(self, Metric::Cost { .. })
    }

    pub fn direction(&self) -> Direction {
        match self {
            Metric::Cost { field } if *field != "tokens_per_second" => Direction::Lower,
            _ => Direction::Higher,
        }
    }

    /// The run's value, or `None` when the run does not have it (split not evaluated, no unseen codes, no cost).
    pub fn value(&self, m: &RunMetrics) -> Option<f64> {
        match self {
            Metric::Set { split, part, measure } => {
                let sets = &m.splits.get(split)?.sets;
                let s = match part {
                    Part::Overall => &sets.overall,
                    Part::Seen => sets.seen.as_ref()?,
                    Part::Unseen => sets.unseen.as_ref()?,
                };
                Some(match measure {
                    SetMeasure::MicroF1 => s.micro.f1,
                    SetMeasure::MicroPrecision => s.micro.precision,
                    SetMeasure::MicroRecall => s.micro.recall,
                    SetMeasure::MacroF1 => s.macro_gold.f1,
                    SetMeasure::MacroF1Nonzero => s.macro_nonzero.f1,
                    SetMeasure::ExactMatch => s.exact_match.ratio,
                })
            }
            Metric::Evidence { split, overlap } => {
                let e = m.splits.get(split)?.evidence.as_ref()?;
                Some(if *overlap { e.overlap.f1 } else { e.exact.f1 })
            }
            Metric::Cost { field } => {
                let c = m.cost.as_ref()?;
                match *field {
                    "train_seconds" => Some(c.train_seconds),
                    "input_tokens" => Some(c.input_tokens as f64),
                    "padded_tokens" => Some(c.padded_tokens as f64),
                    "estimated_flops" => Some(c.estimated_flops),
                    "optimizer_steps" => Some(c.optimizer_steps as f64),
                    "examples" => Some(c.examples as f64),
                    "peak_rss_bytes" => c.peak_rss_bytes.map(|b| b as f64),
                    "peak_gpu_memory_bytes" => c.peak_gpu_memory_bytes.map(|b| b as f64),
                    "tokens_per_second" => Some(c.tokens_per_second),
                    _ => None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_names_parse_or_say_what_to_use() {
        assert_eq!(Metric::parse("test.unseen.macro_f1").unwrap().direction(), Direction::Higher);
        assert_eq!(Metric::parse("cost.train_seconds").unwrap().direction(), Direction::Lower);
        assert_eq!(Metric::parse("cost.tokens_per_second").unwrap().direction(), Direction::Higher);
        assert!(!Metric::parse("cost.input_tokens").unwrap().is_score());
        assert!(Metric::parse("val.evidence.overlap_f1").unwrap().is_score());
        assert!(Metric::parse("test.overal.micro_f1").unwrap_err().contains("overall, seen, unseen"));
        assert!(Metric::parse("tset.overall.micro_f1").unwrap_err().contains("unknown split"));
        assert!(Metric::parse("test.overall.f1").unwrap_err().contains("micro_f1"));
        assert!(Metric::parse("micro_f1").is_err());
    }
}
