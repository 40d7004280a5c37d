//! Join codes: `7-guitar-revenge`.
//!
//! A code is a **nameplate** (a decimal number the rendezvous server uses to pair the two sides; it is not
//! secret) followed by one or more **words** (the secret), all joined by single dashes.
//!
//! - The nameplate is 1 to [`MAX_NAMEPLATE_DIGITS`] decimal digits without leading zeros (`0` itself is
//!   allowed; `07` is refused so that every code has one spelling), so it is `0..=999_999`.
//! - Each word is 1 to [`MAX_WORD_LEN`] lowercase ASCII letters or digits. Words do not have to come from the
//!   built-in list ([`super::words::WORDS`]): a user may choose `4242-correct-horse-battery`.
//! - The whole code is at most [`MAX_CODE_LEN`] bytes.
//!
//! Parsing trims surrounding whitespace and lowercases ASCII letters, so `  7-Guitar-REVENGE ` is the same code
//! as `7-guitar-revenge`. [`Code`]'s `Display` writes the canonical form, and [`Code::password`] (the PAKE
//! input) is that canonical form, so the key is bound to the nameplate as well as to the words.
//!
//! ## Entropy
//!
//! [`Code::generate`] picks each word uniformly from the 256-word list: exactly 8 bits of secret per word,
//! 16 bits for the minimum of [`MIN_GENERATED_WORDS`] words. That is enough because the secret is only ever
//! attacked online through the PAKE: an attacker who guesses once per session succeeds with probability
//! 2^-16 per attempt, and a failed guess is visible to both sides (the key confirmation fails). The nameplate
//! adds nothing: the server and any observer see it.

use std::fmt;
use std::str::FromStr;

use rand_core::CryptoRngCore;

use super::words::{index_of, WORDS};

/// The most bytes a code may have (canonical form, and the trimmed input to [`Code::parse`]).
pub const MAX_CODE_LEN: usize = 128;
/// The most decimal digits in a nameplate (so a nameplate is at most 999,999).
pub const MAX_NAMEPLATE_DIGITS: usize = 6;
/// The most characters in one word.
pub const MAX_WORD_LEN: usize = 32;
/// The fewest words [`Code::generate`] accepts: 2 words are 16 bits of secret.
pub const MIN_GENERATED_WORDS: usize = 2;
/// The largest nameplate.
const MAX_NAMEPLATE: u32 = 999_999;
/// Bits credited per character of a word that is not in the built-in list, see [`Code::secret_bits_estimate`].
const BITS_PER_CHAR_OTHER: u32 = 2;
/// The most bits credited for one word that is not in the built-in list.
const MAX_BITS_OTHER_WORD: u32 = 10;
/// An example for error messages.
const EXAMPLE: &str = "7-guitar-revenge";

/// A parsed, canonical join code: a nameplate and one or more secret words.
///
/// ```
/// use punch_core::secure::Code;
///
/// let code = Code::parse("  7-Guitar-Revenge ")?; // what a person typed
/// assert_eq!(code.nameplate(), 7);
/// assert_eq!(code.words(), ["guitar", "revenge"]);
/// assert_eq!(code.to_string(), "7-guitar-revenge");
/// assert!(Code::parse("guitar-revenge").is_err()); // no nameplate
/// # Ok::<(), punch_core::secure::CodeError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Code {
    nameplate: u32,
    words: Vec<String>,
}

/// Why a string is not a valid [`Code`], or why [`Code::generate`] refused its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeError {
    /// The input was empty (or only whitespace).
    Empty,
    /// The input is longer than [`MAX_CODE_LEN`] bytes.
    TooLong {
        /// Its length in bytes, after trimming.
        len: usize,
    },
    /// The part before the first dash is not a number of 1 to 6 digits without leading zeros.
    BadNameplate(String),
    /// There is a nameplate but no word after it (`7` or `7-`).
    NoSecret,
    /// A word is empty (two dashes in a row, or a trailing dash).
    EmptyWord,
    /// A word has a character other than `a-z`/`0-9`, or is longer than [`MAX_WORD_LEN`].
    BadWord(String),
    /// [`Code::generate`] was asked for a nameplate above 999,999.
    NameplateOutOfRange(u32),
    /// [`Code::generate`] was asked for fewer than [`MIN_GENERATED_WORDS`] words, or so many that the code
    /// would be longer than [`MAX_CODE_LEN`].
    WordCount(usize),
}

impl fmt::Display for CodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodeError::Empty => write!(f, "the code is empty; a code looks like {EXAMPLE}"),
            CodeError::TooLong { len } => {
                write!(f, "a code is at most {MAX_CODE_LEN} bytes long, this one is {len}")
            }
            CodeError::BadNameplate(s) => write!(
                f,
                "a code starts with a number of 1 to {MAX_NAMEPLATE_DIGITS} digits without leading zeros \
                 (the 7 in {EXAMPLE}), not {s:?}"
            ),
            CodeError::NoSecret => write!(f, "a code needs a secret part after the number, like {EXAMPLE}"),
            CodeError::EmptyWord => write!(
                f,
                "a code has an empty word (two dashes in a row, or a dash at the end); it looks like {EXAMPLE}"
            ),
            CodeError::BadWord(w) => write!(
                f,
                "{w:?} is not a valid code word: words are 1 to {MAX_WORD_LEN} letters (a-z) or digits, \
                 separated by single dashes"
            ),
            CodeError::NameplateOutOfRange(n) => {
                write!(f, "a nameplate is at most {MAX_NAMEPLATE}, not {n}")
            }
            CodeError::WordCount(n) => write!(
                f,
                "a generated code has at least {MIN_GENERATED_WORDS} words and fits in {MAX_CODE_LEN} bytes; \
                 {n} words were asked for"
            ),
        }
    }
}

impl std::error::Error for CodeError {}

impl Code {
    /// Parses a code typed by a user: trims surrounding whitespace, lowercases ASCII letters, then checks the
    /// rules in the [module documentation](self). Words need not be in the built-in list.
    pub fn parse(input: &str) -> Result<Code, CodeError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(CodeError::Empty);
        }
        if trimmed.len() > MAX_CODE_LEN {
            return Err(CodeError::TooLong { len: trimmed.len() });
        }
        let lower = trimmed.to_ascii_lowercase();
        let (plate, rest) = match lower.split_once('-') {
            Some((plate, rest)) => (plate, rest),
            None => (lower.as_str(), ""),
        };
        let nameplate = parse_nameplate(plate)?;
        if rest.is_empty() {
            return Err(CodeError::NoSecret);
        }
        let mut words = Vec::new();
        for word in rest.split('-') {
            if word.is_empty() {
                return Err(CodeError::EmptyWord);
            }
            if word.len() > MAX_WORD_LEN
                || !word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                return Err(CodeError::BadWord(word.to_owned()));
            }
            words.push(word.to_owned());
        }
        Ok(Code { nameplate, words })
    }

    /// Generates a code with `nameplate` and `words` words picked uniformly and independently from the
    /// built-in 256-word list, with the caller's cryptographically secure RNG. Each word is 8 bits of secret.
    ///
    /// Refuses a nameplate above 999,999, fewer than [`MIN_GENERATED_WORDS`] words, or more words than fit in
    /// [`MAX_CODE_LEN`] bytes (15 always fit).
    pub fn generate(
        nameplate: u32,
        words: usize,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Code, CodeError> {
        if nameplate > MAX_NAMEPLATE {
            return Err(CodeError::NameplateOutOfRange(nameplate));
        }
        if words < MIN_GENERATED_WORDS {
            return Err(CodeError::WordCount(words));
        }
        let mut picked = Vec::with_capacity(words.min(MAX_CODE_LEN));
        let mut len = decimal_len(nameplate);
        for _ in 0..words {
            let mut byte = [0u8; 1];
            rng.fill_bytes(&mut byte);
            let word = WORDS[usize::from(byte[0])];
            len += 1 + word.len();
            if len > MAX_CODE_LEN {
                return Err(CodeError::WordCount(words));
            }
            picked.push(word.to_owned());
        }
        Ok(Code {
            nameplate,
            words: picked,
        })
    }

    /// The nameplate: the public number the rendezvous server pairs on.
    pub fn nameplate(&self) -> u32 {
        self.nameplate
    }

    /// The secret words, canonical (lowercase).
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// An estimate of the bits of secret in the words (the nameplate is public and counts for nothing).
    ///
    /// A word from the built-in list counts 8 bits (exact when it was generated). Any other word is assumed to
    /// be chosen by a person, whose choices are far from uniform: it counts 2 bits per character, at most 10
    /// bits, which is below what a pick from a few thousand common words would give (English text carries
    /// roughly 1 to 2 bits per letter). So `4242-correct-horse-battery` counts 30 bits. This is a deliberately
    /// conservative guide for warnings, not a guarantee: a person's "random" words may be guessable.
    pub fn secret_bits_estimate(&self) -> u32 {
        self.words
            .iter()
            .map(|w| match index_of(w) {
                Some(_) => 8,
                None => {
                    let chars = u32::try_from(w.len()).unwrap_or(u32::MAX);
                    chars
                        .saturating_mul(BITS_PER_CHAR_OTHER)
                        .min(MAX_BITS_OTHER_WORD)
                }
            })
            .sum()
    }

    /// The bytes fed to the PAKE: the whole canonical code (`7-guitar-revenge`), so the key is bound to the
    /// nameplate as well as the words.
    pub fn password(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

/// Parses a nameplate: 1 to 6 digits, no leading zero unless it is `0`.
fn parse_nameplate(s: &str) -> Result<u32, CodeError> {
    let ok = !s.is_empty()
        && s.len() <= MAX_NAMEPLATE_DIGITS
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    if !ok {
        return Err(CodeError::BadNameplate(s.to_owned()));
    }
    s.parse().map_err(|_| CodeError::BadNameplate(s.to_owned()))
}

/// How many decimal digits `n` has.
fn decimal_len(n: u32) -> usize {
    n.checked_ilog10().map_or(1, |d| d as usize + 1)
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.nameplate)?;
        for w in &self.words {
            write!(f, "-{w}")?;
        }
        Ok(())
    }
}

/// Shows only the nameplate and the number of words: the words are the secret and do not belong in logs.
impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Code")
            .field("nameplate", &self.nameplate)
            .field("words", &self.words.len())
            .finish()
    }
}

impl FromStr for Code {
    type Err = CodeError;
    fn from_str(s: &str) -> Result<Code, CodeError> {
        Code::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;
    use std::collections::HashSet;

    fn parse(s: &str) -> Result<Code, CodeError> {
        Code::parse(s)
    }

    #[test]
    fn parses_the_example() {
        let c = parse("7-guitar-revenge").unwrap();
        assert_eq!(c.nameplate(), 7);
        assert_eq!(c.words(), ["guitar", "revenge"]);
        assert_eq!(c.to_string(), "7-guitar-revenge");
        assert_eq!(c.password(), b"7-guitar-revenge");
        assert_eq!(c.secret_bits_estimate(), 16);
    }

    #[test]
    fn trims_and_lowercases() {
        let c = parse("  7-Guitar-REVENGE\n").unwrap();
        assert_eq!(c, parse("7-guitar-revenge").unwrap());
        assert_eq!(c.to_string(), "7-guitar-revenge");
        assert_eq!("7-guitar-revenge".parse::<Code>().unwrap(), c);
    }

    #[test]
    fn accepts_user_chosen_words() {
        let c = parse("4242-correct-horse-battery").unwrap();
        assert_eq!(c.nameplate(), 4242);
        assert_eq!(c.words().len(), 3);
        // Not list words: 2 bits per character, at most 10 per word.
        assert_eq!(c.secret_bits_estimate(), 30);
        assert_eq!(parse("1-a").unwrap().secret_bits_estimate(), 2);
        assert_eq!(parse("0-x9-42").unwrap().to_string(), "0-x9-42");
        assert_eq!(parse("999999-guitar").unwrap().nameplate(), 999_999);
        let longest_word = "a".repeat(MAX_WORD_LEN);
        assert!(parse(&format!("1-{longest_word}")).is_ok());
    }

    #[test]
    fn refuses_a_code_without_a_secret() {
        for s in ["7", "7-", " 42 ", "123456-"] {
            let e = parse(s).unwrap_err();
            assert_eq!(e, CodeError::NoSecret, "{s}");
            assert_eq!(
                e.to_string(),
                "a code needs a secret part after the number, like 7-guitar-revenge"
            );
        }
    }

    #[test]
    fn refuses_bad_nameplates() {
        for s in [
            "guitar-revenge",
            "-guitar",
            "07-guitar",
            "1234567-guitar",
            "7a-guitar",
            "+7-guitar",
            "guitar",
        ] {
            assert!(
                matches!(parse(s), Err(CodeError::BadNameplate(_))),
                "{s}: {:?}",
                parse(s)
            );
        }
        let msg = parse("x-guitar").unwrap_err().to_string();
        assert!(msg.contains("starts with a number"), "{msg}");
    }

    #[test]
    fn refuses_bad_words() {
        for s in ["7-gu!tar", "7-guitar_revenge", "7-gui tar", "7-guitär"] {
            assert!(
                matches!(parse(s), Err(CodeError::BadWord(_))),
                "{s}: {:?}",
                parse(s)
            );
        }
        let too_long = format!("7-{}", "a".repeat(MAX_WORD_LEN + 1));
        assert!(matches!(parse(&too_long), Err(CodeError::BadWord(_))));
        for s in ["7--guitar", "7-guitar-", "7-guitar--revenge"] {
            assert_eq!(parse(s), Err(CodeError::EmptyWord), "{s}");
        }
        assert!(parse("7-gu!tar")
            .unwrap_err()
            .to_string()
            .contains("not a valid code word"));
    }

    #[test]
    fn refuses_empty_and_too_long() {
        assert_eq!(parse(""), Err(CodeError::Empty));
        assert_eq!(parse("   "), Err(CodeError::Empty));
        let ok = format!("1-{}", ["abcdefghijklmno"; 8].join("-"));
        assert_eq!(ok.len(), 129);
        assert_eq!(parse(&ok), Err(CodeError::TooLong { len: 129 }));
        assert!(parse(&ok[..MAX_CODE_LEN]).is_ok());
        assert!(parse(&ok)
            .unwrap_err()
            .to_string()
            .contains("at most 128 bytes"));
    }

    #[test]
    fn generated_codes_parse_and_use_list_words() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let list: HashSet<&str> = WORDS.iter().copied().collect();
        for words in 2..=15 {
            let code = Code::generate(999_999, words, &mut rng).unwrap();
            let text = code.to_string();
            assert!(text.len() <= MAX_CODE_LEN);
            assert_eq!(Code::parse(&text).unwrap(), code);
            assert_eq!(code.words().len(), words);
            assert!(code.words().iter().all(|w| list.contains(w.as_str())));
            assert_eq!(code.secret_bits_estimate(), 8 * words as u32);
            assert_eq!(code.nameplate(), 999_999);
        }
    }

    #[test]
    fn generate_is_deterministic_given_the_rng_and_covers_the_list() {
        let a = Code::generate(3, 2, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
        let b = Code::generate(3, 2, &mut ChaCha20Rng::seed_from_u64(1)).unwrap();
        assert_eq!(a, b);
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let c = Code::generate(1, 4, &mut rng).unwrap();
            seen.extend(c.words().iter().cloned());
        }
        // 4000 uniform draws from 256: every word appears (missing one has probability < 1e-4).
        assert_eq!(seen.len(), 256);
    }

    #[test]
    fn generate_refuses_bad_arguments() {
        let mut rng = ChaCha20Rng::seed_from_u64(0);
        assert_eq!(Code::generate(1, 1, &mut rng), Err(CodeError::WordCount(1)));
        assert_eq!(Code::generate(1, 0, &mut rng), Err(CodeError::WordCount(0)));
        assert_eq!(
            Code::generate(1_000_000, 2, &mut rng),
            Err(CodeError::NameplateOutOfRange(1_000_000))
        );
        assert_eq!(
            Code::generate(1, 1000, &mut rng),
            Err(CodeError::WordCount(1000))
        );
        assert_eq!(Code::generate(0, 2, &mut rng).unwrap().nameplate(), 0);
    }

    #[test]
    fn debug_does_not_show_the_words() {
        let c = parse("7-guitar-revenge").unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("guitar"), "{dbg}");
        assert!(dbg.contains('7'));
    }

    #[test]
    fn decimal_len_counts_digits() {
        assert_eq!(decimal_len(0), 1);
        assert_eq!(decimal_len(9), 1);
        assert_eq!(decimal_len(10), 2);
        assert_eq!(decimal_len(999_999), 6);
    }

    proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(s in "\\PC{0,140}") {
            if let Ok(c) = Code::parse(&s) {
                let text = c.to_string();
                prop_assert!(text.len() <= MAX_CODE_LEN);
                prop_assert_eq!(Code::parse(&text).unwrap(), c);
            }
        }

        #[test]
        fn well_formed_codes_parse(plate in 0u32..=999_999, words in proptest::collection::vec("[a-z0-9]{1,12}", 1..8)) {
            let text = format!("{plate}-{}", words.join("-"));
            let c = Code::parse(&text).unwrap();
            prop_assert_eq!(c.nameplate(), plate);
            prop_assert_eq!(c.to_string(), text);
        }
    }
}
