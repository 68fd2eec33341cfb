//! Prometheus' text exposition format (version 0.0.4), as node_exporter's
//! textfile collector reads it: the gauges `status --textfile` commands
//! write.

/// Appends one gauge to `out`: its `# HELP` and `# TYPE` lines, then one
/// sample per `(labels, value)` — `labels` already written as
/// `name="value",…` (see [`label`]), or empty for none. A gauge without
/// samples is left out whole (a series that is absent, not zero).
pub fn gauge(out: &mut String, name: &str, help: &str, samples: &[(String, i64)]) {
    if samples.is_empty() {
        return;
    }
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
    for (labels, value) in samples {
        if labels.is_empty() {
            out.push_str(&format!("{name} {value}\n"));
        } else {
            out.push_str(&format!("{name}{{{labels}}} {value}\n"));
        }
    }
}

/// A label value as the format writes it between quotes: `\`, `"` and
/// newlines escaped.
pub fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::{gauge, label};

    #[test]
    fn a_gauge_is_help_type_and_samples_and_labels_are_escaped() {
        let mut out = String::new();
        gauge(&mut out, "g", "Help.", &[]);
        assert_eq!(out, "");
        let file = format!("file=\"{}\"", label("a\"b\\c\nd"));
        gauge(&mut out, "g", "Help.", &[(String::new(), 1), (file, -2)]);
        assert_eq!(
            out,
            "# HELP g Help.\n# TYPE g gauge\ng 1\ng{file=\"a\\\"b\\\\c\\nd\"} -2\n"
        );
    }
}
