//! [`Code`]: one ICD-10 code in its normal form: ICD-10-CM diagnoses dotted
//! ("E11.9", "S72.001A", "I10"), ICD-10-PCS procedures as 7 characters without
//! a dot ("0BH17EZ").

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

use super::IcdError;

/// Longest code without its dot: 3-character category + up to 4 more.
const MAX_LEN: usize = 7;
/// Every ICD-10-PCS code has exactly 7 characters.
const PCS_LEN: usize = 7;

/// The two ICD-10 code systems a [`Code`] can belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum System {
    /// ICD-10-CM diagnoses.
    Cm,
    /// ICD-10-PCS procedures.
    Pcs,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::Cm => "ICD-10-CM",
            System::Pcs => "ICD-10-PCS",
        }
    }
}

/// An ICD-10 code, normalised: upper case; an ICD-10-CM code has a dot after
/// the 3rd character when longer than 3 characters, an ICD-10-PCS code is 7
/// characters without a dot. The two normal forms never coincide.
///
/// ICD-10-CM shape: a letter, then two letters or digits (the category, e.g.
/// "E11", "C7A", "QA0"), then up to four letters or digits. ICD-10-PCS shape:
/// 7 digits or letters other than I and O. The shape says nothing about
/// whether the code exists; ask a [`super::CodeSet`] for that.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(String);

impl Code {
    /// Normalise `s`: trims, upper-cases, accepts an ICD-10-CM code with or
    /// without its dot, and with the trailing dot Edin et al.'s MIMIC-IV
    /// preparation writes after 3-character codes ("I10." is "I10"). A string of
    /// 7 characters starting with a digit is an ICD-10-PCS code; one starting with
    /// a letter is read as ICD-10-CM written without its dot (use
    /// [`Code::parse_pcs`] or [`super::CodeSet::resolve`] where it may be a
    /// procedure code from sections B-X).
    pub fn parse(s: &str) -> Result<Code, IcdError> {
        let trimmed = s.trim();
        if trimmed.len() == PCS_LEN && trimmed.as_bytes()[0].is_ascii_digit() {
            return Code::parse_pcs(s);
        }
        let malformed = |reason: &'static str| IcdError::MalformedCode {
            input: s.to_string(),
            reason,
        };
        if trimmed.is_empty() {
            return Err(malformed("it is empty"));
        }
        // Work on bytes: anything non-ASCII is rejected, so byte positions are characters.
        let bytes = trimmed.as_bytes();
        let mut buf = [0u8; MAX_LEN];
        let mut len = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'.' {
                // The only dot allowed sits after the category ("I10." is I10).
                if i != 3 {
                    return Err(malformed("a dot may only follow the 3-character category"));
                }
                continue;
            }
            if !b.is_ascii_alphanumeric() {
                return Err(malformed(
                    "it contains a character other than letters, digits and one dot",
                ));
            }
            if len == MAX_LEN {
                return Err(malformed("it is longer than 7 characters"));
            }
            buf[len] = b.to_ascii_uppercase();
            len += 1;
        }
        if len < 3 {
            return Err(malformed("it is shorter than a 3-character category"));
        }
        if !buf[0].is_ascii_alphabetic() {
            return Err(malformed(
                "an ICD-10-CM code starts with a letter (an ICD-10-PCS code has exactly 7 characters)",
            ));
        }
        if buf[1..3].iter().all(u8::is_ascii_alphabetic) {
            // No ICD-10-CM category is three letters; such input is a word, not a code.
            return Err(malformed(
                "the 2nd and 3rd characters cannot both be letters",
            ));
        }
        let mut normal = String::with_capacity(len + 1);
        for (i, &b) in buf[..len].iter().enumerate() {
            if i == 3 {
                normal.push('.');
            }
            normal.push(char::from(b));
        }
        Ok(Code(normal))
    }

    /// An ICD-10-PCS code: 7 digits or letters other than I and O, any case,
    /// surrounding whitespace trimmed.
    pub fn parse_pcs(s: &str) -> Result<Code, IcdError> {
        let trimmed = s.trim();
        let malformed = |reason: &'static str| IcdError::MalformedCode {
            input: s.to_string(),
            reason,
        };
        if trimmed.len() != PCS_LEN {
            return Err(malformed("an ICD-10-PCS code has exactly 7 characters"));
        }
        let mut normal = String::with_capacity(PCS_LEN);
        for b in trimmed.bytes() {
            let up = b.to_ascii_uppercase();
            if !up.is_ascii_alphanumeric() || up == b'I' || up == b'O' {
                return Err(malformed(
                    "an ICD-10-PCS code holds only digits and letters other than I and O",
                ));
            }
            normal.push(char::from(up));
        }
        Ok(Code(normal))
    }

    /// Parse `s` as a code of `system`.
    pub fn parse_in(system: System, s: &str) -> Result<Code, IcdError> {
        match system {
            System::Cm => Code::parse(s).and_then(|c| match c.system() {
                System::Cm => Ok(c),
                System::Pcs => Err(IcdError::MalformedCode {
                    input: s.to_string(),
                    reason: "an ICD-10-CM code starts with a letter",
                }),
            }),
            System::Pcs => Code::parse_pcs(s),
        }
    }

    /// Reads a code in its normal form, as icdbench writes them: 7 characters
    /// without a dot are ICD-10-PCS, anything else is read by [`Code::parse`].
    fn from_normal(s: &str) -> Result<Code, IcdError> {
        let t = s.trim();
        if t.len() == PCS_LEN && !t.contains('.') {
            if let Ok(c) = Code::parse_pcs(t) {
                return Ok(c);
            }
        }
        Code::parse(s)
    }

    /// Which system the code belongs to, read from its normal form.
    pub fn system(&self) -> System {
        if self.0.len() == PCS_LEN && !self.0.contains('.') {
            System::Pcs
        } else {
            System::Cm
        }
    }

    /// The normal form, e.g. "E11.9" or "0BH17EZ".
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 3-character category, e.g. "E11" for "E11.9"; for an ICD-10-PCS
    /// code its first three axes (section, body system, root operation).
    pub fn category(&self) -> &str {
        // Always 3 ASCII characters or more by construction.
        self.0.get(..3).unwrap_or(&self.0)
    }

    /// The code without its dot, as CMS code lists write it ("E119").
    pub fn compact(&self) -> String {
        self.0.replace('.', "")
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Code {
    type Err = IcdError;
    fn from_str(s: &str) -> Result<Code, IcdError> {
        Code::parse(s)
    }
}

impl TryFrom<String> for Code {
    type Error = IcdError;
    fn try_from(s: String) -> Result<Code, IcdError> {
        Code::parse(&s)
    }
}

impl TryFrom<&str> for Code {
    type Error = IcdError;
    fn try_from(s: &str) -> Result<Code, IcdError> {
        Code::parse(s)
    }
}

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Code {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Code, D::Error> {
        let s = String::deserialize(deserializer)?;
        Code::from_normal(&s).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// Normalise a code prefix ("e11", "E11.", "I", "S72.0") to the dotted form
/// codes use, so `code.as_str().starts_with(prefix)` works. `None` when the
/// prefix cannot start any code (empty, or characters other than letters,
/// digits and a dot).
pub(crate) fn normalise_prefix(raw: &str) -> Option<String> {
    let mut compact = String::with_capacity(MAX_LEN + 1);
    for c in raw.trim().chars() {
        match c {
            '.' => continue,
            c if c.is_ascii_alphanumeric() => compact.push(c.to_ascii_uppercase()),
            _ => return None,
        }
    }
    if compact.is_empty() || compact.len() > MAX_LEN {
        return None;
    }
    // An ICD-10-PCS prefix starts with a digit (sections 0-9) and has no dot.
    if compact.len() > 3 && !compact.as_bytes()[0].is_ascii_digit() {
        compact.insert(3, '.');
    }
    Some(compact)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> String {
        match Code::parse(s) {
            Ok(c) => c.as_str().to_string(),
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    #[test]
    fn normalises_case_dot_and_whitespace() {
        assert_eq!(ok("e119"), "E11.9");
        assert_eq!(ok(" E11.9 "), "E11.9");
        assert_eq!(ok("E11.90"), "E11.90");
        assert_eq!(ok("i10"), "I10");
        assert_eq!(ok("s72001a"), "S72.001A");
        assert_eq!(ok("S72.001a"), "S72.001A");
        assert_eq!(ok("T36.0X1A"), "T36.0X1A");
        assert_eq!(ok("c7a.010"), "C7A.010");
        // FY2026 added category QA0: a letter in the 2nd position.
        assert_eq!(ok("QA0.0101"), "QA0.0101");
        assert_eq!(ok("\tz00.00\n"), "Z00.00");
        // Edin et al.'s reformat_icd10 writes code[:3] + "." + code[3:]: 3-character codes end in a dot.
        assert_eq!(ok("I10."), "I10");
        assert_eq!(ok("z66."), "Z66");
        assert_eq!(ok("D62."), "D62");
    }

    #[test]
    fn procedure_codes_are_seven_characters_without_a_dot() {
        assert_eq!(ok("0BH17EZ"), "0BH17EZ");
        assert_eq!(ok("0bh17ez"), "0BH17EZ");
        assert_eq!(Code::parse("0BH17EZ").unwrap().system(), System::Pcs);
        assert_eq!(Code::parse("E11.9").unwrap().system(), System::Cm);
        assert_eq!(Code::parse("S72001A").unwrap().system(), System::Cm);
        // Letter sections (imaging, B) need the explicit form.
        let b = Code::parse_pcs("b2111zz").unwrap();
        assert_eq!((b.as_str(), b.system()), ("B2111ZZ", System::Pcs));
        assert_eq!(Code::parse_in(System::Pcs, "02703DZ").unwrap().as_str(), "02703DZ");
        for bad in ["0BH17E", "0BH17EZZ", "0BH1.7EZ", "0BI17EZ", "0BH17OZ"] {
            let e = Code::parse_pcs(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        assert!(Code::parse_in(System::Cm, "0BH17EZ").is_err());
        // The normal forms round-trip through serde, letter sections included.
        let back: Code = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        assert_eq!(back, b);
        let cm: Code = serde_json::from_str("\"S72.001A\"").unwrap();
        assert_eq!(cm.system(), System::Cm);
    }

    #[test]
    fn rejects_malformed_codes_naming_the_input() {
        for bad in [
            "",
            "   ",
            "E1",
            "11.9",
            "119",
            "E1.19",
            "E11..9",
            "E11.9.",
            "E11-9",
            "E11 9",
            "E11.90123",
            "ABC",
            "ABC.1",
            "É11",
            "E11.9;",
        ] {
            match Code::parse(bad) {
                Ok(c) => panic!("{bad:?} should be rejected, got {c}"),
                Err(e) => {
                    let msg = e.to_string();
                    assert!(
                        msg.contains(&format!("{bad:?}")),
                        "message {msg:?} should name {bad:?}"
                    );
                    assert!(!msg.contains('\n'), "one-line message: {msg:?}");
                }
            }
        }
    }

    #[test]
    fn category_and_compact() {
        let c = Code::parse("S72.001A").unwrap();
        assert_eq!(c.category(), "S72");
        assert_eq!(c.compact(), "S72001A");
        assert_eq!(Code::parse("I10").unwrap().category(), "I10");
    }

    #[test]
    fn serde_is_a_plain_string_and_deserialize_normalises() {
        let c = Code::parse("E11.9").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"E11.9\"");
        let back: Code = serde_json::from_str("\" e119 \"").unwrap();
        assert_eq!(back, c);
        let err = serde_json::from_str::<Code>("\"11.9\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("11.9"), "{err}");
        let v: Vec<Code> = serde_json::from_str(r#"["i10","E11.9"]"#).unwrap();
        assert_eq!(
            v.iter().map(Code::as_str).collect::<Vec<_>>(),
            ["I10", "E11.9"]
        );
    }

    #[test]
    fn from_str_display_and_ordering() {
        let a: Code = "e11.9".parse().unwrap();
        assert_eq!(a.to_string(), "E11.9");
        let mut v = [
            Code::parse("E11.9").unwrap(),
            Code::parse("E11").unwrap(),
            Code::parse("A00").unwrap(),
        ];
        v.sort();
        assert_eq!(
            v.iter().map(Code::as_str).collect::<Vec<_>>(),
            ["A00", "E11", "E11.9"]
        );
    }

    #[test]
    fn prefixes_normalise_like_codes() {
        assert_eq!(normalise_prefix("e11").as_deref(), Some("E11"));
        assert_eq!(normalise_prefix("E11.").as_deref(), Some("E11"));
        assert_eq!(normalise_prefix("e119").as_deref(), Some("E11.9"));
        assert_eq!(normalise_prefix(" I ").as_deref(), Some("I"));
        assert_eq!(normalise_prefix(""), None);
        assert_eq!(normalise_prefix("E1-"), None);
        assert_eq!(normalise_prefix("0bh1").as_deref(), Some("0BH1"));
    }
}
