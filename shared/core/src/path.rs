//! Dotted paths into JSON values: `gameplay.score`, `steps.lookup.body.items.0.id`.

use serde_json::Value;

/// Looks up a dotted path. Array elements are addressed by index, either as a
/// segment (`items.0`) or in brackets (`items[0]`, `items.[0]`).
pub fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = root;
    for segment in segments(path) {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split(['.', '[', ']']).filter(|s| !s.is_empty())
}

/// True when `path` is a plain dotted path we can resolve without a template
/// engine (letters, digits, `_`, `-`, `.`, brackets) and names at least one
/// segment: `]` alone would resolve to the whole context.
pub fn is_plain_path(path: &str) -> bool {
    segments(path).next().is_some()
        && !path.starts_with('.')
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resolves_objects_and_arrays() {
        let v = json!({"a": {"b": [10, {"c": "x"}]}});
        assert_eq!(lookup(&v, "a.b.0"), Some(&json!(10)));
        assert_eq!(lookup(&v, "a.b[1].c"), Some(&json!("x")));
        assert_eq!(lookup(&v, "a.b.[1].c"), Some(&json!("x")));
        assert_eq!(lookup(&v, "a.missing"), None);
        assert_eq!(lookup(&v, "a.b.9"), None);
        assert_eq!(lookup(&v, "a.b.x"), None);
    }

    #[test]
    fn a_path_names_a_segment() {
        assert!(is_plain_path("a.b[0]"));
        for not_a_path in ["", "]", "[]", ".a", "a b"] {
            assert!(!is_plain_path(not_a_path), "{not_a_path:?}");
        }
    }
}
