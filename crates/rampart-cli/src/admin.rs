//! What every admin command shares: the admin API's address and token, one call, and printing
//! the answer as JSON or as a table (`-o table|json`).

use clap::Args;
use serde_json::Value;

/// The admin API's address and token, as every admin command takes them.
#[derive(Args)]
pub(crate) struct AdminArgs {
    /// The admin listener.
    #[arg(
        long,
        env = "RAMPART_ADMIN_URL",
        default_value = "http://127.0.0.1:9901"
    )]
    pub(crate) admin_url: String,
    /// The admin API token (prefer the environment variable: command lines are visible to others).
    #[arg(long, env = "RAMPART_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) token: String,
    /// How answers are printed.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Json, global = true)]
    pub(crate) output: Output,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Output {
    /// The API's JSON answer, pretty-printed.
    Json,
    /// One row per item, the columns the command names.
    Table,
}

/// One admin API call; returns the JSON answer, or the status and problem document.
pub(crate) async fn call(
    admin: &AdminArgs,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<Value, String> {
    let client = reqwest::Client::new();
    let url = format!("{}{path}", admin.admin_url.trim_end_matches('/'));
    let mut request = client.request(method, url).bearer_auth(&admin.token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .map_err(|e| format!("admin API unreachable: {e}"))?;
    let status = response.status();
    let value: Value = response
        .json()
        .await
        .map_err(|e| format!("unexpected answer: {e}"))?;
    if status.is_success() {
        Ok(value)
    } else {
        let text = serde_json::to_string_pretty(&value).map_err(|e| e.to_string())?;
        Err(format!("{status}\n{text}"))
    }
}

/// Prints an answer: as JSON, or as a table of the `items` member's rows (an answer without
/// one is a single row) under these columns.
pub(crate) fn print(answer: &Value, output: Output, items: &str, columns: &[&str]) {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(answer).unwrap_or_default()
        ),
        Output::Table => {
            let rows = match answer.get(items).and_then(Value::as_array) {
                Some(rows) => rows.iter().collect(),
                None => vec![answer],
            };
            print!("{}", table(&rows, columns));
        }
    }
}

/// Columns padded to their widest cell; arrays joined by commas, absent values as `-`.
pub(crate) fn table(rows: &[&Value], columns: &[&str]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| columns.iter().map(|c| cell(&row[*c])).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<String>| {
        let padded: Vec<String> = values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(columns.iter().map(|c| c.to_uppercase()).collect());
    for row in cells {
        out.push_str(&line(row));
    }
    out
}

fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.chars().filter(|c| !c.is_control()).collect(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_aligns_columns_and_shows_absent_values_as_a_dash() {
        let rows = [
            &json!({"id": "k1", "scopes": ["a", "b"], "expires_at": null}),
            &json!({"id": "key-two", "scopes": [], "expires_at": 5}),
        ];
        assert_eq!(
            table(&rows, &["id", "scopes", "expires_at"]),
            "ID       SCOPES  EXPIRES_AT\nk1       a,b     -\nkey-two          5\n"
        );
    }

    #[test]
    fn control_characters_in_values_never_reach_the_terminal() {
        assert_eq!(cell(&json!("a\u{1b}[31mb\n")), "a[31mb");
    }
}
