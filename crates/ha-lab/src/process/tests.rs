//! Unit tests of the log tail shown when a test fails.

use super::collapse_repeats;

#[test]
fn a_run_of_repeated_messages_is_shown_once_and_counted() {
    let log = r#"{"t":{"$date":"2026-11-30T13:20:16.83Z"},"s":"W","msg":"rolled back"}
{"t":{"$date":"2026-11-30T13:20:17.1Z"},"s":"I","msg":"sync stopped: E11000"}
{"t":{"$date":"2026-11-30T13:20:17.3Z"},"s":"I","msg":"sync stopped: E11000"}
{"t":{"$date":"2026-11-30T13:20:17.5Z"},"s":"I","msg":"sync stopped: E11000"}
{"t":{"$date":"2026-11-30T13:20:18.0Z"},"s":"I","msg":"election"}
plain line
plain line"#;
    let lines = collapse_repeats(log);
    assert_eq!(lines.len(), 6, "{lines:#?}");
    assert!(lines[1].contains("13:20:17.1Z") && lines[1].contains("E11000"));
    assert_eq!(
        lines[2],
        "    (2 more like it, the last at 2026-11-30T13:20:17.5Z)"
    );
    assert!(lines[3].contains("election"));
    assert_eq!(lines[4], "plain line");
    assert_eq!(lines[5], "    (1 more like it)");
}
