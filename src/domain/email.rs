//! E-mail addresses of users, parsed at the boundary: normalised (NFKC, lower case), and
//! folded to a skeleton under which addresses that merely look alike are equal.

use unicode_normalization::UnicodeNormalization;

/// A syntactically plausible e-mail address, trimmed, in NFKC and lower case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

/// The normal form of an address as typed: trimmed, NFKC (fullwidth and compatibility forms
/// become their plain letters), lower case. Sign-in looks addresses up in this form.
pub fn normalise(value: &str) -> String {
    let lower: String = value.trim().nfkc().collect::<String>().to_lowercase();
    lower.nfkc().collect()
}

/// Characters that change how text is displayed without being seen: bidirectional controls
/// (embeddings, overrides, isolates, marks) and zero-width characters. Refused in e-mails and
/// display names.
pub fn is_invisible_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{180e}'
            | '\u{200b}'..='\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// The Latin letter a character of another script is commonly mistaken for (lower case, as
/// after [`normalise`]): Cyrillic, Greek and Armenian look-alikes and a few Latin variants.
/// Fullwidth forms need no entry: NFKC has already made them plain letters.
fn confusable(c: char) -> Option<char> {
    Some(match c {
        // Cyrillic
        'а' | 'ӓ' => 'a',
        'в' | 'ь' => 'b',
        'с' | 'ҫ' => 'c',
        'ԁ' => 'd',
        'е' | 'ҽ' => 'e',
        'ғ' => 'f',
        'ԍ' => 'g',
        'һ' | 'н' | 'ћ' => 'h',
        'і' | 'ӏ' => 'i',
        'ј' => 'j',
        'к' | 'ҝ' => 'k',
        'м' => 'm',
        'п' => 'n',
        'о' | 'ӧ' => 'o',
        'р' => 'p',
        'ԛ' => 'q',
        'г' => 'r',
        'ѕ' => 's',
        'т' => 't',
        'ц' | 'џ' => 'u',
        'ѵ' => 'v',
        'ԝ' | 'ѡ' | 'ш' => 'w',
        'х' => 'x',
        'у' | 'ү' => 'y',
        'ᴢ' => 'z',
        // Greek
        'α' | 'ά' => 'a',
        'β' => 'b',
        'ϲ' => 'c',
        'δ' => 'd',
        'ε' | 'έ' => 'e',
        'ϝ' => 'f',
        'η' | 'ή' => 'n',
        'ι' | 'ί' | 'ϊ' => 'i',
        'ϳ' => 'j',
        'κ' => 'k',
        'μ' => 'u',
        'ν' => 'v',
        'ο' | 'ό' | 'σ' => 'o',
        'ρ' | 'ϱ' => 'p',
        'τ' => 't',
        'υ' | 'ύ' => 'u',
        'ω' | 'ώ' => 'w',
        'χ' => 'x',
        'γ' => 'y',
        'ζ' => 'z',
        // Armenian
        'օ' => 'o',
        'ս' => 'u',
        'հ' => 'h',
        'ց' => 'g',
        'ո' => 'n',
        'ք' => 'p',
        // Latin variants
        'ı' | 'ɩ' | 'ɪ' => 'i',
        'ȷ' => 'j',
        'ɑ' => 'a',
        'ɡ' => 'g',
        'ʟ' => 'l',
        'ɴ' => 'n',
        'ʀ' => 'r',
        'ꜱ' => 's',
        'ᴜ' => 'u',
        'ᴠ' => 'v',
        'ᴡ' => 'w',
        _ => return None,
    })
}

/// The skeleton of a normalised address: every confusable character replaced by the Latin
/// letter it looks like. Two addresses with one skeleton would be mistaken for each other.
pub fn skeleton(normalised: &str) -> String {
    normalised
        .chars()
        .map(|c| confusable(c).unwrap_or(c))
        .collect()
}

impl Email {
    /// Parses an address: one `@`, a non-empty local part, a dotted domain, no spaces, control
    /// or invisible characters, at most 254 characters once normalised.
    ///
    /// # Errors
    /// With a human reason when the address is not plausible.
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = normalise(value);
        if value.is_empty() || value.len() > 254 {
            return Err("must be an e-mail address of at most 254 characters".to_owned());
        }
        let valid = match value.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
                    && !value
                        .chars()
                        .any(|c| c.is_whitespace() || c.is_control() || is_invisible_control(c))
            }
            None => false,
        };
        if valid {
            Ok(Self(value))
        } else {
            Err("must be an e-mail address".to_owned())
        }
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its [`skeleton`].
    pub fn skeleton(&self) -> String {
        skeleton(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn accepts_plausible_addresses_and_normalises_them() {
        assert_eq!(
            Email::parse(" Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        assert_eq!(
            Email::parse("ＡＤＡ@example.com").unwrap().as_str(),
            "ada@example.com",
            "fullwidth letters are NFKC-normalised"
        );
    }

    #[test]
    fn look_alikes_share_a_skeleton() {
        let latin = Email::parse("paypal@example.com").unwrap();
        for other in [
            "раураl@example.com",
            "pαypal@example.com",
            "ＰＡＹＰＡＬ@example.com",
        ] {
            let other = Email::parse(other).unwrap();
            assert_eq!(other.skeleton(), latin.skeleton(), "{other:?}");
        }
        assert_ne!(
            Email::parse("paypai@example.com").unwrap().skeleton(),
            latin.skeleton()
        );
    }

    #[test]
    fn rejects_implausible_addresses() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@c.de",
            "a\u{200b}da@example.com",
            "ada@exa\u{202e}mple.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
