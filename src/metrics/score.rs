//! Set-based scores of one run: the figures of [`super::sets`] overall and for seen and
//! unseen codes, with [`super::bootstrap`] intervals when asked for.

use super::bootstrap;
use super::sets::{set_metrics, LabelSets, LabelSpace, Part, Report, ScoreOptions, UNSEEN_DEFINITION};

/// Scores predicted code sets against gold: overall, and per seen/unseen
/// partition and with bootstrap intervals when `opts` asks for them.
///
/// Never fails: an invalid [`super::Bootstrap`] leaves `ci` empty and says why in
/// [`Report::notes`] (use [`super::Bootstrap::validate`] to reject it up front).
pub fn score(sets: &LabelSets, opts: &ScoreOptions) -> Report {
    let seen_mask: Option<Vec<bool>> = opts
        .seen_codes
        .as_ref()
        .map(|s| sets.codes.iter().map(|c| s.contains(c.as_str())).collect());
    let seen = seen_mask.as_deref();
    let space = opts
        .label_space
        .as_deref()
        .map(|ls| LabelSpace::new(ls, sets, opts.seen_codes.as_ref()));

    let mut overall = set_metrics(sets, Part::All, seen, space.as_ref());
    let mut parts = seen.map(|_| {
        (
            set_metrics(sets, Part::Seen, seen, space.as_ref()),
            set_metrics(sets, Part::Unseen, seen, space.as_ref()),
        )
    });

    let mut notes = Vec::new();
    if let Some(b) = &opts.bootstrap {
        match b.validate() {
            Ok(()) => {
                let [all, s, u] = bootstrap::intervals(sets, seen, b);
                overall.ci = Some(all);
                if let Some((seen_m, unseen_m)) = parts.as_mut() {
                    seen_m.ci = Some(s);
                    unseen_m.ci = Some(u);
                }
            }
            Err(e) => notes.push(format!("no confidence intervals: {e}")),
        }
    }

    let (seen_m, unseen_m) = parts.unzip();
    Report {
        overall,
        unseen_definition: seen_m.as_ref().map(|_| UNSEEN_DEFINITION.to_owned()),
        seen: seen_m,
        unseen: unseen_m,
        notes,
    }
}
