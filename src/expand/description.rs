//! `description`: the code's own description, as it reads in a note, as a span.

use super::{table_example, Env, ExpandError, ExpandedSpan, Strategy};
use crate::config::{DescriptionParams, ExpansionKind};
use crate::icd::CodeEntry;
use crate::text::note_form;
use rand::rngs::StdRng;

pub struct Description {
    keep_raw: bool,
}

impl Description {
    pub fn new(spec: &DescriptionParams) -> Description {
        Description { keep_raw: spec.keep_raw }
    }
}

impl Strategy for Description {
    fn expand_code(&mut self, entry: &CodeEntry, _env: &mut Env<'_>, _rng: &mut StdRng) -> Result<Vec<ExpandedSpan>, ExpandError> {
        Ok(forms(&entry.description, self.keep_raw)
            .into_iter()
            .map(|(span, detail)| table_example(entry, span, None, ExpansionKind::Description, format!("description{detail}")))
            .collect())
    }
}

/// The note form of a table text, and the verbatim text when asked for and different.
pub(super) fn forms(text: &str, keep_raw: bool) -> Vec<(String, &'static str)> {
    let note = note_form(text);
    let raw = text.trim().to_string();
    let mut out = Vec::new();
    if !note.is_empty() {
        out.push((note.clone(), ""));
    }
    if keep_raw && !raw.is_empty() && raw != note {
        out.push((raw, ", verbatim"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_form_first_and_verbatim_only_when_different() {
        assert_eq!(forms("Essential (primary) hypertension", false), [("essential hypertension".to_string(), "")]);
        let both = forms("Essential (primary) hypertension", true);
        assert_eq!(both[1].0, "Essential (primary) hypertension");
        assert_eq!(forms("gout", true).len(), 1);
    }
}
