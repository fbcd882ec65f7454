//! `application/x-www-form-urlencoded` values (a leaf: it depends on nothing of the
//! crate), for the admin's client authentication and the audit store's query strings.

/// Decodes one value: `+` is a space, `%XX` a byte; `None` for a malformed escape or
/// bytes that are not UTF-8.
#[cfg_attr(not(any(feature = "admin", feature = "postgres")), allow(dead_code))]
pub(crate) fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_forms_and_refuses_bad_escapes() {
        assert_eq!(super::decode("a+b%2Bc%25").as_deref(), Some("a b+c%"));
        assert_eq!(super::decode("%zz"), None);
        assert_eq!(super::decode("%4"), None);
        assert_eq!(super::decode("%ff"), None);
    }
}
