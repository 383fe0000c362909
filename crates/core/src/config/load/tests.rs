//! Tests of configuration loading: layering, spans, every error kind.

use super::error::{LISTENERS, STRING};
use super::schema::line_column;
use super::*;

const EXAMPLE: &str = include_str!("../../../../../config/fleetmq.toml");

fn problems(text: &str) -> Vec<Problem> {
    match load_from_str(text, "fleetmq.toml") {
        Ok(config) => panic!("expected errors, loaded {config:?}"),
        Err(error) => error.problems().to_vec(),
    }
}

/// The only problem `text` has, checked to sit at `line:column`.
fn only_problem(text: &str, line: usize, column: usize) -> Problem {
    let mut found = problems(text);
    assert_eq!(found.len(), 1, "{found:#?}");
    let problem = found.remove(0);
    assert_eq!(
        problem.origin,
        Origin::File {
            name: "fleetmq.toml".to_string(),
            line: Some(line),
            column: Some(column),
        },
        "{problem}"
    );
    problem
}

fn env(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    pairs
        .iter()
        .map(|(name, value)| (OsString::from(name), OsString::from(value)))
        .collect()
}

fn env_problems(text: &str, pairs: &[(&str, &str)]) -> Vec<Problem> {
    let file = FileLayer {
        text,
        name: "fleetmq.toml",
    };
    match load_layers(Some(file), env(pairs).into_iter()) {
        Ok(config) => panic!("expected errors, loaded {config:?}"),
        Err(error) => error.problems().to_vec(),
    }
}

fn from_env(variable: &str) -> Origin {
    Origin::Environment {
        variable: variable.to_string(),
    }
}

#[test]
fn empty_text_gives_the_defaults() {
    assert_eq!(load_from_str("", "empty.toml").unwrap(), Config::default());
}

#[test]
fn example_file_loads_and_holds_the_defaults() {
    let config = load_from_str(EXAMPLE, "config/fleetmq.toml").unwrap();
    assert_eq!(config, Config::default());
}

#[test]
fn example_file_mentions_every_setting() {
    let schema = schema().unwrap();
    for (section, value) in &schema {
        let toml::Value::Table(settings) = value else {
            continue;
        };
        for key in settings.keys() {
            // Optional settings without a default appear commented out.
            let line = format!("\n{key} = ");
            let commented = format!("\n# {key} = ");
            assert!(
                EXAMPLE.contains(&line) || EXAMPLE.contains(&commented),
                "{section}.{key} missing"
            );
        }
    }
}

#[test]
fn file_values_override_defaults() {
    let text =
        "[limits]\nmax_inflight = 5\n\n[[listener]]\nname = \"lab\"\nbind = \"0.0.0.0:1884\"\n";
    let config = load_from_str(text, "fleetmq.toml").unwrap();
    assert_eq!(config.limits.max_inflight, 5);
    assert_eq!(config.limits.max_topic_levels, 128);
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.listeners[0].name, "lab");
    assert_eq!(config.listeners[0].bind, "0.0.0.0:1884");
}

#[test]
fn syntax_error_names_line_and_column() {
    let problem = only_problem("[limits]\nmax_inflight = 10\nmax_inflight 20\n", 3, 14);
    assert!(
        matches!(problem.kind, ProblemKind::Syntax { .. }),
        "{problem}"
    );
    assert!(
        problem
            .to_string()
            .starts_with("fleetmq.toml:3:14: invalid TOML: "),
        "{problem}"
    );
}

#[test]
fn unknown_key_names_the_key_and_its_likely_meaning() {
    let problem = only_problem("[limits]\n\nmax_inflite = 10\n", 3, 1);
    assert_eq!(problem.key, "limits.max_inflite");
    assert_eq!(
        problem.to_string(),
        "fleetmq.toml:3:1: limits.max_inflite: unknown setting \
         (did you mean `limits.max_inflight`?)"
    );
}

#[test]
fn unknown_key_in_the_wrong_section_points_to_the_right_one() {
    let problem = only_problem("[mqtt]\nmax_inflight = 10\n", 2, 1);
    assert_eq!(
        problem.kind,
        ProblemKind::UnknownKey {
            suggestion: Some("`limits.max_inflight`".to_string())
        }
    );
    let problem = only_problem("max_qos = 1\n", 1, 1);
    assert_eq!(problem.key, "max_qos");
    assert!(problem.to_string().contains("`mqtt.max_qos`"), "{problem}");
}

#[test]
fn unknown_key_without_a_likely_meaning_says_to_remove_it() {
    let problem = only_problem("[[listener]]\nwebsocket = true\n", 2, 1);
    assert_eq!(problem.key, "listener[0].websocket");
    assert!(problem.to_string().contains("(remove it;"), "{problem}");
    let problem = only_problem("[limitz]\n", 1, 2);
    assert!(problem.to_string().contains("`limits`"), "{problem}");
}

#[test]
fn wrong_type_names_what_was_expected_and_found() {
    let problem = only_problem("[limits]\nmax_inflight = \"ten\"\n", 2, 16);
    assert_eq!(problem.key, "limits.max_inflight");
    assert_eq!(
        problem.to_string(),
        "fleetmq.toml:2:16: limits.max_inflight: expected an integer, found a string \
         (write a whole number without quotes)"
    );
    let problem = only_problem("[[listener]]\nbind = 1883\n", 2, 8);
    assert_eq!(problem.key, "listener[0].bind");
    let problem = only_problem("listener = \"0.0.0.0:1883\"\n", 1, 12);
    assert_eq!(
        problem.kind,
        ProblemKind::WrongType {
            expected: LISTENERS,
            found: STRING.to_string()
        }
    );
    let problem = only_problem("log = \"debug\"\n", 1, 7);
    assert!(problem.to_string().contains("[section]"), "{problem}");
}

#[test]
fn dotted_keys_and_inline_tables_are_located_too() {
    let problem = only_problem("\nlimits.max_inflight = \"x\"\n", 2, 23);
    assert_eq!(problem.key, "limits.max_inflight");
    let problem = only_problem("mqtt = { max_qos = 1, retian = true }\n", 1, 23);
    assert_eq!(problem.key, "mqtt.retian");
    assert!(
        problem.to_string().contains("`mqtt.retain_available`"),
        "{problem}"
    );
}

#[test]
fn every_shape_problem_is_reported_in_file_order() {
    let text = "[mqtt]\nmax_qos = \"2\"\nretain = true\n\n[limits]\nmax_inflight = 1.5\n";
    let found = problems(text);
    let summary: Vec<(String, String)> = found
        .iter()
        .map(|p| (p.origin.to_string(), p.key.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            ("fleetmq.toml:2:11".to_string(), "mqtt.max_qos".to_string()),
            ("fleetmq.toml:3:1".to_string(), "mqtt.retain".to_string()),
            (
                "fleetmq.toml:6:16".to_string(),
                "limits.max_inflight".to_string()
            ),
        ]
    );
    let error = load_from_str(text, "fleetmq.toml").unwrap_err();
    assert_eq!(error.to_string().lines().count(), 3, "{error}");
}

#[test]
fn out_of_range_integer_names_the_key_and_the_range() {
    let problem = only_problem("[limits]\n# comment\nmax_inflight = 70000\n", 3, 16);
    assert_eq!(problem.key, "limits.max_inflight");
    assert!(
        problem
            .to_string()
            .contains("use a whole number from 0 to 65535"),
        "{problem}"
    );
    let problem = only_problem("[[listener]]\nmax_connections = -1\n", 2, 19);
    assert_eq!(problem.key, "listener[0].max_connections");
}

#[test]
fn validation_errors_point_at_the_value() {
    let text = "[[listener]]\nbind = \"127.0.0.1:1883\"\n\n\
                [[listener]]\nbind = \"localhost:1883\"\n\n\
                [limits]\nmax_inflight = 0\n";
    let found = problems(text);
    let summary: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(summary.len(), 2, "{summary:#?}");
    assert!(
        summary[0].starts_with(
            "fleetmq.toml:5:8: listener[1].bind: \"localhost:1883\" is not a socket address"
        ),
        "{summary:#?}"
    );
    assert!(
        summary[1].starts_with("fleetmq.toml:8:16: limits.max_inflight: 0 would forbid"),
        "{summary:#?}"
    );
}

#[test]
fn validation_error_on_a_default_value_points_at_its_table() {
    // Two listeners that both keep the default bind address.
    let problem = only_problem(
        "[[listener]]\nname = \"a\"\n[[listener]]\nname = \"b\"\n",
        3,
        1,
    );
    assert_eq!(problem.key, "listener[1].bind");
    let problem = only_problem("listener = []\n", 1, 12);
    assert_eq!(problem.key, "listener");
}

#[test]
fn validation_error_on_an_unwritten_setting_names_the_file() {
    let found = problems("[limits]\nmax_client_id_length = 3\n");
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].key, "mqtt.auto_id_prefix");
    assert!(found[0]
        .to_string()
        .starts_with("fleetmq.toml: mqtt.auto_id_prefix: "));
}

#[test]
fn unreadable_file_names_the_path() {
    let error = load(Some(Path::new("/nonexistent/fleetmq.toml"))).unwrap_err();
    assert!(matches!(error, ConfigError::Read { .. }), "{error}");
    assert!(
        error
            .to_string()
            .starts_with("/nonexistent/fleetmq.toml: cannot read the configuration file: "),
        "{error}"
    );
}

/// The only test that touches the process environment, with a variable
/// no other test sets.
#[test]
fn environment_overrides_the_file() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(
        &mut file,
        b"[limits]\nmax_topic_levels = 5\nmax_inflight = 7\n",
    )
    .unwrap();
    std::env::set_var("FLEETMQ_LIMITS__MAX_TOPIC_LEVELS", "77");
    let loaded = load(Some(file.path()));
    std::env::remove_var("FLEETMQ_LIMITS__MAX_TOPIC_LEVELS");
    let config = loaded.unwrap();
    assert_eq!(config.limits.max_topic_levels, 77);
    assert_eq!(config.limits.max_inflight, 7);
}

#[test]
fn environment_values_are_converted_to_their_types() {
    let file = FileLayer {
        text: "",
        name: "fleetmq.toml",
    };
    let pairs = [
        ("FLEETMQ_LOG__LEVEL", "debug"),
        ("FLEETMQ_MQTT__RETAIN_AVAILABLE", "false"),
        ("FLEETMQ_MQTT__AUTO_ID_PREFIX", "123"),
        ("fleetmq_limits__max_inflight", "3"),
    ];
    let config = load_layers(Some(file), env(&pairs).into_iter()).unwrap();
    assert_eq!(config.log.level, "debug");
    assert!(!config.mqtt.retain_available);
    assert_eq!(config.mqtt.auto_id_prefix, "123");
    assert_eq!(config.limits.max_inflight, 3);
    let config = load_layers(None, env(&pairs).into_iter()).unwrap();
    assert_eq!(config.listeners, Config::default().listeners);
    assert_eq!(config.log.level, "debug");
}

#[test]
fn empty_environment_variable_counts_as_unset() {
    let file = FileLayer {
        text: "[log]\nlevel = \"warn\"\n",
        name: "fleetmq.toml",
    };
    let pairs = [("FLEETMQ_LOG__LEVEL", ""), ("FLEETMQ_NOT_A_SETTING", "")];
    let config = load_layers(Some(file), env(&pairs).into_iter()).unwrap();
    assert_eq!(config.log.level, "warn");
}

#[test]
fn other_tools_variables_are_left_alone() {
    let file = FileLayer {
        text: "",
        name: "fleetmq.toml",
    };
    let pairs = [
        ("FLEETMQ_BIN", "/usr/bin/fleetmq"),
        ("FLEETMQ_TEST_BROKER", "mosquitto"),
    ];
    let config = load_layers(Some(file), env(&pairs).into_iter()).unwrap();
    assert_eq!(config, Config::default());
}

#[test]
fn environment_errors_name_the_variable() {
    let found = env_problems(
        "",
        &[
            ("FLEETMQ_LIMITS__MAX_INFLITE", "10"),
            ("FLEETMQ_LIMITS__MAX_INFLIGHT", "ten"),
            ("FLEETMQ_LIMITS__MAX_QUEUED_MESSAGES", "-5"),
            ("FLEETMQ_LISTENER__BIND", "0.0.0.0:1883"),
            ("FLEETMQ_MAX_QOS", "1"),
            ("FLEETMQ_MQTT", "1"),
        ],
    );
    let summary: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(
        summary,
        [
            "environment variable FLEETMQ_LIMITS__MAX_INFLIGHT: limits.max_inflight: \
             expected an integer, found \"ten\" (set the variable to a whole number)",
            "environment variable FLEETMQ_LIMITS__MAX_INFLITE: limits.max_inflite: \
             unknown setting (did you mean FLEETMQ_LIMITS__MAX_INFLIGHT?)",
            "environment variable FLEETMQ_LIMITS__MAX_QUEUED_MESSAGES: \
             limits.max_queued_messages: invalid value: integer `-5`, expected usize \
             (use a whole number from 0 to 9223372036854775807)",
            "environment variable FLEETMQ_LISTENER__BIND: listener.bind: listeners cannot \
             be set from the environment (declare them as [[listener]] tables in the \
             configuration file and pass it with --config)",
            "environment variable FLEETMQ_MAX_QOS: max_qos: unknown setting \
             (did you mean FLEETMQ_MQTT__MAX_QOS?)",
            "environment variable FLEETMQ_MQTT: mqtt: expected a table, found a single \
             value (name a setting inside the section, such as FLEETMQ_LOG__LEVEL)",
        ]
    );
}

#[test]
fn validation_error_from_the_environment_names_the_variable() {
    let found = env_problems(
        "[log]\nlevel = \"info\"\n",
        &[("FLEETMQ_LOG__LEVEL", "fleetmq=loud")],
    );
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].origin, from_env("FLEETMQ_LOG__LEVEL"));
    assert_eq!(found[0].key, "log.level");
}

#[test]
fn file_and_environment_problems_are_listed_together() {
    let found = env_problems(
        "[limits]\nmax_inflight = \"x\"\n",
        &[("FLEETMQ_LOG__LEVL", "debug")],
    );
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(found[0].key, "limits.max_inflight");
    assert_eq!(found[1].origin, from_env("FLEETMQ_LOG__LEVL"));
}

#[test]
fn line_column_counts_characters() {
    assert_eq!(line_column("a\nbé c", 6), (2, 4));
    assert_eq!(line_column("", 0), (1, 1));
}

#[test]
fn environment_applies_to_a_configuration_from_another_source() {
    let mut base = Config::default();
    base.listeners.truncate(1);
    base.listeners[0].bind = "0.0.0.0:8883".to_string();
    base.http.enabled = false;
    base.limits.max_inflight = 7;
    let unchanged = apply_environment_from(&base, std::iter::empty()).unwrap();
    assert_eq!(unchanged, base);
    let moved = apply_environment_from(
        &base,
        env(&[
            ("FLEETMQ_HTTP__ENABLED", "true"),
            ("FLEETMQ_HTTP__BIND", "127.0.0.1:18099"),
        ])
        .into_iter(),
    )
    .unwrap();
    assert!(moved.http.enabled);
    assert_eq!(moved.http.bind, "127.0.0.1:18099");
    assert_eq!(moved.listeners, base.listeners);
    assert_eq!(moved.limits.max_inflight, 7);
    let error = apply_environment_from(
        &base,
        env(&[
            ("FLEETMQ_HTTP__ENABLED", "true"),
            ("FLEETMQ_HTTP__BIND", "0.0.0.0:18099"),
        ])
        .into_iter(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("FLEETMQ_HTTP__BIND"), "{error}");
}
