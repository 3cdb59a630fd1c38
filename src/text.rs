//! Small text helpers shared by the data generator and the matchers.

pub mod rewrite;

/// A description as it reads inside a sentence: parentheticals dropped, title-case words lowered.
pub fn note_form(description: &str) -> String {
    let mut out = String::with_capacity(description.len());
    let mut depth = 0usize;
    for ch in description.chars() {
        match ch {
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(ch),
            _ => {}
        }
    }
    let words: Vec<String> = out
        .split_whitespace()
        .map(|w| {
            let mut cs = w.chars();
            let first_upper = cs.next().is_some_and(|c| c.is_uppercase());
            let rest_lower = cs.all(|c| !c.is_uppercase());
            if first_upper && rest_lower { w.to_lowercase() } else { w.to_string() }
        })
        .collect();
    words.join(" ").trim_matches(|c: char| c == ',' || c == ';' || c.is_whitespace()).to_string()
}

/// A lower-cased word with its character offsets in the source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub word: String,
    pub start: usize,
    pub end: usize,
}

/// Splits text into lower-cased alphanumeric words (apostrophes kept inside words), with character offsets.
pub fn tokenize(text: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut start = 0;
    let chars: Vec<char> = text.chars().collect();
    for (i, &ch) in chars.iter().enumerate() {
        let inner_apostrophe = ch == '\'' && !current.is_empty() && chars.get(i + 1).is_some_and(|c| c.is_alphanumeric());
        if ch.is_alphanumeric() || inner_apostrophe {
            if current.is_empty() {
                start = i;
            }
            current.extend(ch.to_lowercase());
        } else if !current.is_empty() {
            tokens.push(Token { word: std::mem::take(&mut current), start, end: i });
        }
    }
    if !current.is_empty() {
        tokens.push(Token { word: current, start, end: chars.len() });
    }
    tokens
}

/// Whitespace-separated words in `text`, as `text.split_whitespace().count()` counts them,
/// over bytes for ASCII text (a data card counts every word of 180M-word corpora).
pub fn count_words(text: &str) -> usize {
    if !text.is_ascii() {
        return text.split_whitespace().count();
    }
    let mut words = 0;
    let mut in_word = false;
    for &b in text.as_bytes() {
        let space = matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
        words += usize::from(!space && !in_word);
        in_word = !space;
    }
    words
}

/// Character offsets where sentences end (after `.`, `!`, `?`, `;` or a line break), for scoping cues.
pub fn sentence_bounds(text: &str) -> Vec<usize> {
    let mut bounds: Vec<usize> = text
        .chars()
        .enumerate()
        .filter(|(_, c)| matches!(c, '.' | '!' | '?' | ';' | '\n'))
        .map(|(i, _)| i)
        .collect();
    bounds.push(text.chars().count());
    bounds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_form_drops_parentheticals_and_lowers_title_words() {
        assert_eq!(note_form("Essential (primary) hypertension"), "essential hypertension");
        assert_eq!(note_form("Type 2 diabetes mellitus without complications"), "type 2 diabetes mellitus without complications");
        assert_eq!(note_form("HIV disease"), "HIV disease");
    }

    #[test]
    fn count_words_agrees_with_split_whitespace() {
        for t in ["", "  ", "a", " a  bb\tc\nd\r\n", "x\u{0b}y\u{0c}z ", "café au lait", "a\u{00a0}b  c"] {
            assert_eq!(count_words(t), t.split_whitespace().count(), "{t:?}");
        }
    }

    #[test]
    fn tokens_carry_character_offsets() {
        let t = tokenize("Crohn's dz, T2DM—stable");
        let words: Vec<&str> = t.iter().map(|t| t.word.as_str()).collect();
        assert_eq!(words, ["crohn's", "dz", "t2dm", "stable"]);
        assert_eq!((t[3].start, t[3].end), (17, 23));
    }
}
