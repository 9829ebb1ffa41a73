//! MQTT topic matching and building.

/// Whether `topic` matches the subscription `filter` (with `+` and `#` wildcards), following
/// MQTT 3.1.1 §4.7 (a `$`-topic is not matched by a filter starting with a wildcard).
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Joins `prefix` and `levels` into a topic. Levels containing `/`, `+`, `#` or NUL are
/// replaced by `_` characters so that an identifier from a peer can never widen a topic.
pub fn build(prefix: &str, levels: &[&str]) -> String {
    let mut s = String::from(prefix);
    for l in levels {
        s.push('/');
        if l.is_empty() {
            s.push('_');
        }
        for c in l.chars() {
            s.push(if matches!(c, '/' | '+' | '#' | '\0') {
                '_'
            } else {
                c
            });
        }
    }
    s
}

/// Like [`build`], but a level that is exactly `+` or `#` stays a wildcard: for subscription
/// filters.
pub fn filter(prefix: &str, levels: &[&str]) -> String {
    let mut s = String::from(prefix);
    for l in levels {
        if matches!(*l, "+" | "#") {
            s.push('/');
            s.push_str(l);
        } else {
            s.push_str(&build("", &[l]));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        assert!(topic_matches("a/+/c", "a/b/c"));
        assert!(topic_matches("a/#", "a"));
        assert!(topic_matches("a/#", "a/b/c"));
        assert!(topic_matches("#", "a/b"));
        assert!(!topic_matches("a/+", "a/b/c"));
        assert!(!topic_matches("a/b", "a/b/c"));
        assert!(!topic_matches("+/x", "$SYS/x"));
        assert!(topic_matches("a/+/+", "a//x"));
    }

    #[test]
    fn filters_keep_whole_level_wildcards() {
        assert_eq!(filter("wp", &["reply", "c-1", "#"]), "wp/reply/c-1/#");
        assert_eq!(
            filter("wp", &["capture", "camera", "+", "status"]),
            "wp/capture/camera/+/status"
        );
        assert_eq!(filter("wp", &["a+b", "x#"]), "wp/a_b/x_");
    }

    #[test]
    fn building_sanitises_levels() {
        assert_eq!(
            build("watchpost", &["neasmart", "zone", "1", "3"]),
            "watchpost/neasmart/zone/1/3"
        );
        assert_eq!(build("w", &["a/b", "+", "#", ""]), "w/a_b/_/_/_");
    }
}
