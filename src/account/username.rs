//! Usernames as the account service compares them: RFC 8265 §3.3
//! (UsernameCaseMapped profile of the PRECIS IdentifierClass, simplified as
//! CONTRACTS §2.1 states it).
//!
//! 1. Control and format characters (Unicode general categories Cc, Cf:
//!    NUL, a zero-width space, a bidi override) are refused, not removed:
//!    `alice` and `al\u{200B}ice` must not both be taken.
//! 2. Width mapping (RFC 8265 §3.3.2 step 1): fullwidth and halfwidth forms
//!    (U+FF00..U+FFEF, and the ideographic space U+3000) map to their
//!    compatibility decompositions (`Ａｌｉｃｅ` is `Alice`).
//! 3. Case mapping: Unicode Default Case Folding (`Alice`, `ALICE` and
//!    `alice` are one account; `Straße` is `strasse`).
//! 4. Normalization: NFC.
//!
//! The result, between 1 and [`MAX_USERNAME_CHARS`] characters, with no
//! leading or trailing white space, is the account's name as stored and
//! shown.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Longest username, in characters (after normalization).
pub const MAX_USERNAME_CHARS: usize = 64;

/// Why a username is refused (all map to `malformed_request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    /// Empty, or only white space.
    #[error("username must not be empty")]
    Empty,
    /// Longer than [`MAX_USERNAME_CHARS`].
    #[error("username must be at most {MAX_USERNAME_CHARS} characters")]
    TooLong,
    /// Holds a control or format character (Unicode Cc, Cf).
    #[error("username must not contain control or format characters (such as a zero-width space)")]
    ForbiddenCharacter,
    /// Starts or ends with white space.
    #[error("username must not start or end with a space")]
    OuterSpace,
}

/// Whether `c` is of general category Cc or Cf.
pub fn is_control_or_format(c: char) -> bool {
    matches!(c.general_category(), GeneralCategory::Control | GeneralCategory::Format)
}

fn width_mapped(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if ('\u{FF00}'..='\u{FFEF}').contains(&c) || c == '\u{3000}' {
            out.extend(std::iter::once(c).nfkc());
        } else {
            out.push(c);
        }
    }
    out
}

/// The canonical form of a username (see the module documentation).
pub fn normalize(input: &str) -> Result<String, UsernameError> {
    // Bound the work before any mapping: a name four times the limit in
    // bytes is refused as too long whatever it maps to.
    if input.len() > MAX_USERNAME_CHARS * 4 * 4 {
        return Err(UsernameError::TooLong);
    }
    // Printable ASCII (most names): width mapping and NFC leave it as it
    // is and case folding is ASCII lower case, so the result is the same
    // without the Unicode tables (a test checks every such character).
    if input.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return checked(input.to_ascii_lowercase());
    }
    if input.chars().any(is_control_or_format) {
        return Err(UsernameError::ForbiddenCharacter);
    }
    let folded = caseless::default_case_fold_str(&width_mapped(input));
    checked(folded.nfc().collect())
}

/// `name`, already mapped, if it is a valid username.
fn checked(name: String) -> Result<String, UsernameError> {
    if name.trim().is_empty() {
        return Err(UsernameError::Empty);
    }
    if name.chars().any(is_control_or_format) {
        return Err(UsernameError::ForbiddenCharacter);
    }
    if name.trim() != name {
        return Err(UsernameError::OuterSpace);
    }
    if name.chars().count() > MAX_USERNAME_CHARS {
        return Err(UsernameError::TooLong);
    }
    Ok(name)
}

/// What [`migrate`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsernameMigration {
    /// Users renamed to their canonical form.
    pub renamed: u64,
    /// Users left as they were: their canonical form is taken by another
    /// account, or the name is not a valid username any more (they can
    /// still sign in with a passkey, or be renamed by the operator).
    pub conflicts: Vec<String>,
}

/// Rename every stored user whose name is not in canonical form (databases
/// from before usernames were normalized), by compare-and-set.
pub async fn migrate<S: crate::store::account::AccountStore>(
    store: &S,
) -> Result<UsernameMigration, crate::store::StoreError> {
    let mut out = UsernameMigration::default();
    for (handle, name) in store.usernames().await? {
        let name = String::from_utf8_lossy(&name).into_owned();
        match normalize(&name) {
            Ok(n) if n == name => {}
            Ok(n) => {
                if store.rename_user(&handle, &name, &n).await? {
                    out.renamed += 1;
                } else {
                    out.conflicts.push(name);
                }
            }
            Err(_) => out.conflicts.push(name),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_width_and_composition_fold_to_one_name() {
        for n in ["alice", "Alice", "ALICE", "Ａｌｉｃｅ", "ａＬＩＣＥ"] {
            assert_eq!(normalize(n).as_deref(), Ok("alice"), "{n}");
        }
        // é precomposed and e + combining acute are one name.
        assert_eq!(normalize("Jos\u{e9}"), normalize("Jose\u{301}"));
        assert_eq!(normalize("Stra\u{df}e").as_deref(), Ok("strasse"));
    }

    /// The printable-ASCII shortcut gives what the Unicode mapping gives,
    /// for every printable ASCII character in every position.
    #[test]
    fn the_ascii_shortcut_agrees_with_the_unicode_mapping() {
        let slow = |s: &str| {
            let folded = caseless::default_case_fold_str(&width_mapped(s));
            checked(folded.nfc().collect())
        };
        for b in 0x20u8..0x7f {
            let c = char::from(b);
            for s in [format!("{c}"), format!("a{c}b"), format!("{c}x"), format!("x{c}"), format!("{c}{c}")] {
                assert_eq!(normalize(&s), slow(&s), "{s:?}");
            }
        }
        for s in ["Alice", "BOB smith", "x".repeat(64).as_str(), "x".repeat(65).as_str(), " lead", "trail "] {
            assert_eq!(normalize(s), slow(s), "{s:?}");
        }
    }

    #[test]
    fn control_and_format_characters_are_refused() {
        for n in ["al\u{200B}ice", "ali\u{0}ce", "a\u{202E}b", "\u{FEFF}bob", "x\ty", "\u{7}"] {
            assert_eq!(normalize(n), Err(UsernameError::ForbiddenCharacter), "{n:?}");
        }
    }

    #[test]
    fn empty_long_and_padded_names_are_refused() {
        assert_eq!(normalize(""), Err(UsernameError::Empty));
        assert_eq!(normalize("   "), Err(UsernameError::Empty));
        assert_eq!(normalize(" bob"), Err(UsernameError::OuterSpace));
        assert_eq!(normalize(&"a".repeat(65)), Err(UsernameError::TooLong));
        assert_eq!(normalize(&"a".repeat(64)).map(|s| s.len()), Ok(64));
        assert_eq!(normalize(&"é".repeat(100_000)), Err(UsernameError::TooLong));
    }
}
