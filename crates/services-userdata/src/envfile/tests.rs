use secrecy::ExposeSecret as _;

use super::parse_env;
use crate::text::export_line;

#[test]
fn the_runbooks_customizations_file_expands_its_base_uri() {
    let text = "# Note that connection strings below should be modified as necessary\n\n\
        MONGO_BASE_URI=mongodb://circle:pw@mongo-1:27017\n\
        export CIRCLE_SECRETS_MONGODB_MAIN_URI=\"$MONGO_BASE_URI/circle_ghe?ssl=true&authSource=admin\"\n\
        export CIRCLE_SECRETS_MONGODB_BUILD_STATE_URI=\"${MONGO_BASE_URI}/build_state_dev_ghe?ssl=true\"\n";
    let file = parse_env(text).unwrap();
    assert_eq!(
        file.vars["CIRCLE_SECRETS_MONGODB_MAIN_URI"].expose_secret(),
        "mongodb://circle:pw@mongo-1:27017/circle_ghe?ssl=true&authSource=admin"
    );
    assert_eq!(
        file.vars["CIRCLE_SECRETS_MONGODB_BUILD_STATE_URI"].expose_secret(),
        "mongodb://circle:pw@mongo-1:27017/build_state_dev_ghe?ssl=true"
    );
    assert_eq!(
        file.exported,
        [
            "CIRCLE_SECRETS_MONGODB_MAIN_URI",
            "CIRCLE_SECRETS_MONGODB_BUILD_STATE_URI"
        ]
    );
}

#[test]
fn what_the_renderer_writes_reads_back_exactly_whatever_it_holds() {
    let hostile = "p'a\"s$s`w\\o r%d@:/?#[]&;|<>*\tü–密";
    let text = export_line("POSTGRES_PASSWORD", hostile);
    let file = parse_env(&text).unwrap();
    assert_eq!(file.vars["POSTGRES_PASSWORD"].expose_secret(), hostile);
}

#[test]
fn lines_sh_would_not_read_as_assignments_are_named_without_their_values() {
    let text = "echo \u{2018}CIRCLE_SECRETS_SESSION_COOKIE_KEY=s3cr3t-value\u{2019} >> /etc/x\n\
                export A='unterminated s3cr3t-value\n\
                B=s3cr3t-value more\n\
                C=$(cat /etc/s3cr3t-value)\n\
                D=\"$UNSET/x\"\n\
                9E=1\n";
    let problems = parse_env(text).unwrap_err();
    let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
    assert_eq!(lines, [1, 2, 3, 4, 5, 6]);
    assert!(problems[0].message.contains("typographic quotes"));
    assert!(problems[4].message.contains("$UNSET"));
    for problem in &problems {
        assert!(!problem.message.contains("s3cr3t"), "{problem:?}");
    }
}

#[test]
fn a_file_that_doubles_a_value_line_after_line_is_refused_quickly_and_small() {
    let mut text = String::from("A0=\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"\n");
    for i in 1..=25 {
        text.push_str(&format!("A{i}=\"$A{}$A{}\"\n", i - 1, i - 1));
    }
    assert!(text.len() < 1024);
    let started = std::time::Instant::now();
    let problems = parse_env(&text).unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // 32 bytes doubled: line 17 is the first over 1 MiB; the lines after
    // it use a variable that was never set.
    assert_eq!(problems[0].line, 17, "{problems:?}");
    assert!(
        problems[0].message.contains("more than 1024 KiB"),
        "{problems:?}"
    );
    assert!(problems.iter().all(|p| !p.message.contains("xxxx")));
}
