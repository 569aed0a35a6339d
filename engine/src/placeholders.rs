//! `${...}` placeholders: `${params.NAME}` in pipelines and `${VAR}` in connection files share
//! one scanner, so both agree on what a placeholder is.

/// Replaces every `<open>NAME}` in `text` with `lookup(NAME)`; a name without a value (and an
/// unterminated placeholder) stays in the text literally.
///
/// ```
/// use osiris_engine::placeholders::substitute;
/// let out = substitute("a=${A}, b=${B}", "${", |name| (name == "A").then(|| "1".to_string()));
/// assert_eq!(out, "a=1, b=${B}");
/// ```
pub fn substitute(text: &str, open: &str, mut lookup: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(open) {
        out.push_str(&rest[..start]);
        let after = &rest[start + open.len()..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[start..]);
            return out;
        };
        match lookup(&after[..end]) {
            Some(value) => out.push_str(&value),
            None => out.push_str(&rest[start..start + open.len() + end + 1]),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The names of the placeholders in `text`, in order.
pub fn names(text: &str, open: &str) -> Vec<String> {
    let mut found = Vec::new();
    substitute(text, open, |name| {
        found.push(name.to_string());
        None
    });
    found
}
