//! Word-level rewriting shared by the synthetic generator's paraphrases and the rewriting expansion strategies:
//! phrases match whole words, case-insensitively, across spaces, hyphens or
//! slashes but never across other punctuation.

/// Byte ranges of the alphanumeric words of `text`.
pub fn word_ranges(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, ch) in text.char_indices() {
        match (ch.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

fn phrase_words(phrase: &str) -> Vec<String> {
    word_ranges(phrase).iter().map(|&(a, b)| phrase[a..b].to_lowercase()).collect()
}

/// Byte ranges where `phrase` occurs as whole words, left to right, not overlapping.
pub fn find_phrase(text: &str, phrase: &str) -> Vec<(usize, usize)> {
    let want = phrase_words(phrase);
    let words = word_ranges(text);
    let mut out = Vec::new();
    if want.is_empty() {
        return out;
    }
    let mut i = 0;
    while i + want.len() <= words.len() {
        let window = &words[i..i + want.len()];
        let same = window.iter().zip(&want).all(|(&(a, b), w)| text[a..b].to_lowercase() == *w);
        let joined = window.windows(2).all(|p| text[p[0].1..p[1].0].chars().all(|c| c == ' ' || c == '-' || c == '/'));
        if same && joined {
            out.push((window[0].0, window[want.len() - 1].1));
            i += want.len();
        } else {
            i += 1;
        }
    }
    out
}

/// Replaces every whole-word occurrence of `phrase`; `None` when there is none.
pub fn replace_phrase(text: &str, phrase: &str, with: &str) -> Option<String> {
    let hits = find_phrase(text, phrase);
    if hits.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (a, b) in hits {
        out.push_str(&text[last..a]);
        out.push_str(with);
        last = b;
    }
    out.push_str(&text[last..]);
    Some(out)
}

/// Removes the byte range `a..b` and tidies the spacing and commas left behind.
pub fn cut(text: &str, a: usize, b: usize) -> String {
    tidy(&format!("{}{}", &text[..a], &text[b..]))
}

/// Collapses spaces, drops spaces before commas and stray leading/trailing commas.
pub fn tidy(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = joined.replace(" ,", ",");
    while out.contains(",,") {
        out = out.replace(",,", ",");
    }
    out.trim_matches(|c: char| c == ',' || c == ' ').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phrases_match_whole_words_only() {
        assert_eq!(replace_phrase("acute gastrointestinal bleeding", "gastrointestinal", "GI").as_deref(), Some("acute GI bleeding"));
        assert_eq!(replace_phrase("gastrointestinalis", "gastrointestinal", "GI"), None);
        assert_eq!(replace_phrase("Non-ST elevation myocardial infarction", "non st elevation myocardial infarction", "NSTEMI").as_deref(), Some("NSTEMI"));
        // A comma breaks a phrase.
        assert_eq!(replace_phrase("kidney, disease", "kidney disease", "x"), None);
    }

    #[test]
    fn cutting_tidies_commas_and_spaces() {
        let t = "atrial fibrillation, unspecified";
        let (a, _) = find_phrase(t, "unspecified")[0];
        assert_eq!(cut(t, a, t.len()), "atrial fibrillation");
        assert_eq!(tidy("  a ,  b,, c , "), "a, b, c");
    }
}
