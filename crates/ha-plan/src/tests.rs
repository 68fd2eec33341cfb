use std::fmt;

use serde_json::json;

use crate::{Action, Change, Combined, Problem, ProblemKind, Problems, Report};

struct Step(&'static str);

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "create database {}", self.0)
    }
}

impl Change for Step {
    fn kind(&self) -> &'static str {
        "create-database"
    }
    fn target(&self) -> String {
        format!("database {}", self.0)
    }
}

#[test]
fn a_report_counts_changes_only_when_applied() {
    let steps = [Step("vms"), Step("domain")];
    let dry = Report::from_changes("pg-provision", true, &steps, vec!["w".to_owned()]);
    assert_eq!(dry.changed(), 0);
    assert_eq!(
        dry.to_json(),
        json!({
            "changed": 0, "dry_run": true, "planned": 2, "warnings": ["w"],
            "actions": [
                {"kind": "create-database", "target": "database vms", "detail": "create database vms"},
                {"kind": "create-database", "target": "database domain", "detail": "create database domain"},
            ],
        })
    );
    assert!(dry.to_text().contains("would: create database vms\n"));
    assert!(
        dry.to_text()
            .ends_with("pg-provision: 2 change(s) planned, none made (dry run)\n")
    );

    let done = Report::from_changes("pg-provision", false, &steps, Vec::new());
    assert_eq!(done.changed(), 2);
    assert!(done.to_text().ends_with("pg-provision: changed: 2\n"));
    let none = Report::new("pg-provision", false, Vec::new(), Vec::new());
    assert_eq!(
        none.to_summary_text(),
        "pg-provision: nothing to do (changed: 0)\n"
    );
}

#[test]
fn combined_reports_name_each_concern() {
    let mut combined = Combined::new("circle-ha apply", false);
    combined.ran.push((
        "postgres".to_owned(),
        Report::new(
            "pg-provision",
            false,
            vec![Action::new("create-role", "role circle", "CREATE ROLE")],
            vec!["loose mode".to_owned()],
        ),
    ));
    combined
        .skipped
        .push(("vault".to_owned(), "not configured".to_owned()));
    let value = combined.to_json();
    assert_eq!(value["changed"], 1);
    assert_eq!(value["actions"][0]["concern"], "postgres");
    assert_eq!(
        value["concerns"][1],
        json!({"concern": "vault", "skipped": "not configured"})
    );
    assert_eq!(value["warnings"][0], "postgres: loose mode");
    let text = combined.to_text();
    assert!(text.contains("warning: postgres: loose mode\n"));
    assert!(text.contains("done: postgres: CREATE ROLE\n"));
    assert!(text.contains("skipped: vault: not configured\n"));
}

#[test]
fn problems_carry_their_key_and_read_as_sentences() {
    let problem =
        Problem::invalid("members[2].priority", "1001 must be between 0 and 1000").under("[mongo]");
    assert_eq!(problem.key, "[mongo].members[2].priority");
    assert_eq!(
        problem.to_string(),
        "[mongo].members[2].priority 1001 must be between 0 and 1000"
    );
    assert_eq!(
        Problem::missing("host").under("[postgres]").to_string(),
        "[postgres].host is missing"
    );
    assert_eq!(
        Problem::new("[vault].ca_file", ProblemKind::Unreadable, ": no such file").to_string(),
        "[vault].ca_file: no such file"
    );
    let mut problems = Problems::new();
    assert!(problems.clone().finish(()).is_ok());
    problems.push(Problem::missing("[a].b"));
    problems.push(Problem::missing("[a].c"));
    let err = problems.finish(()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "2 problems in the configuration:\n  - [a].b is missing\n  - [a].c is missing"
    );
    assert_eq!(
        serde_json::to_value(&err).unwrap()[0],
        json!({"key": "[a].b", "kind": "missing", "message": "is missing"})
    );
}

#[test]
fn a_documents_schema_holds_the_envelope_and_its_own_fields() {
    let schema = serde_json::to_value(crate::schema_of::<Report>()).unwrap();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for field in [
        "schema_version",
        "tool",
        "changed",
        "dry_run",
        "planned",
        "actions",
    ] {
        assert!(required.contains(&field), "{field} not required: {schema}");
    }
    assert_eq!(
        schema["properties"]["actions"]["items"]["$ref"],
        "#/$defs/Action"
    );
}
