use std::time::Instant;

use super::*;

fn scanner() -> LeakScanner {
    LeakScanner::new().unwrap()
}

/// The sample as an upstream framework serializes it into a JSON error body.
fn json_encoded(text: &str) -> Vec<u8> {
    serde_json::json!({
        "status": 500,
        "error": "Internal Server Error",
        "trace": text,
        "path": "/api/orders/17",
    })
    .to_string()
    .into_bytes()
}

/// An ordinary body long enough to push a marker past the first chunks.
fn padding() -> String {
    let order =
        r#"{"id":"ord_1","status":"shipped","total":42.5,"items":[{"sku":"A-1","qty":2}]},"#;
    format!(r#"{{"orders":[{}"#, order.repeat(20))
}

/// Feeds `body` to a fresh stream in chunks of `size` bytes.
fn stream_in_chunks(scanner: &LeakScanner, body: &[u8], size: usize) -> Option<LeakKind> {
    let mut scan = scanner.stream();
    for chunk in body.chunks(size) {
        scan.feed(chunk);
    }
    scan.found()
}

/// The sample is found raw, JSON-encoded, split in two at every byte, and in small chunks.
fn assert_found(kind: LeakKind, sample: &str) {
    let s = scanner();
    assert_eq!(s.scan(sample.as_bytes()), Some(kind), "raw: {sample}");
    let encoded = json_encoded(sample);
    assert_eq!(s.scan(&encoded), Some(kind), "JSON-encoded: {sample}");

    let body = format!("{}{sample}", padding()).into_bytes();
    for split in padding().len()..body.len() {
        let mut scan = s.stream();
        let first = scan.feed(&body[..split]);
        let second = scan.feed(&body[split..]);
        assert_eq!(first.or(second), Some(kind), "split at {split}: {sample}");
    }
    for size in [1, 7, 64, 600] {
        assert_eq!(
            stream_in_chunks(&s, &body, size),
            Some(kind),
            "chunks of {size}: {sample}"
        );
    }
}

fn assert_clean(body: &str) {
    let s = scanner();
    assert_eq!(s.scan(body.as_bytes()), None, "false positive: {body}");
    assert_eq!(
        stream_in_chunks(&s, body.as_bytes(), 5),
        None,
        "false positive: {body}"
    );
}

const JAVA: &str = "java.lang.IllegalStateException: order has no lines\n\
\tat com.example.orders.OrderService.total(OrderService.java:42)\n\
\tat com.example.orders.OrderController.get(OrderController.java:17)\n\
\tat java.base/java.lang.Thread.run(Thread.java:833)\n";

const PYTHON: &str = "Traceback (most recent call last):\n  \
File \"/app/orders/views.py\", line 31, in get_order\n    \
return Order.objects.get(pk=pk)\nKeyError: 'pk'\n";

const NODE: &str = "TypeError: Cannot read properties of undefined (reading 'id')\n    \
at Object.<anonymous> (/app/src/orders.js:12:19)\n    \
at Module._compile (node:internal/modules/cjs/loader:1256:14)\n";

const DOTNET: &str = "System.NullReferenceException: Object reference not set to an instance of an object.\n   \
at Shop.Orders.OrderService.Total(Order order) in C:\\src\\Shop\\OrderService.cs:line 42\n";

const GO: &str = "panic: runtime error: invalid memory address or nil pointer dereference\n\n\
goroutine 1 [running]:\nmain.total(...)\n\t/app/main.go:12 +0x1d\n";

const PHP: &str = "PHP Fatal error:  Uncaught Exception: no order in /var/www/html/order.php:7\n\
Stack trace:\n#0 /var/www/html/index.php(3): load()\n#1 {main}\n  \
thrown in /var/www/html/order.php on line 7\n";

const RUBY: &str = "NoMethodError (undefined method `total' for nil:NilClass):\n  \
app/controllers/orders_controller.rb:12:in `show'\n";

const RUST: &str =
    "thread 'main' panicked at src/orders.rs:12:5:\ncalled `Option::unwrap()` on a `None` value\n";

#[test]
fn java_traces_are_found() {
    assert_found(LeakKind::StackTrace, JAVA);
    assert_found(
        LeakKind::StackTrace,
        "Exception in thread \"main\" java.lang.NullPointerException",
    );
    assert_found(
        LeakKind::StackTrace,
        "Caused by: org.hibernate.exception.ConstraintViolationException: could not execute",
    );
    assert_found(LeakKind::StackTrace, "\tat com.example.Kt.main(Main.kt:3)");
}

#[test]
fn python_tracebacks_are_found() {
    assert_found(LeakKind::StackTrace, PYTHON);
    // A frame alone, as a logging handler may print it.
    assert_found(
        LeakKind::StackTrace,
        "  File \"/usr/lib/python3.11/json/decoder.py\", line 355, in raw_decode",
    );
}

#[test]
fn node_traces_are_found() {
    assert_found(LeakKind::StackTrace, NODE);
    assert_found(LeakKind::StackTrace, "    at /app/server.js:40:7");
    assert_found(
        LeakKind::StackTrace,
        "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
    );
}

#[test]
fn dotnet_traces_are_found() {
    assert_found(LeakKind::StackTrace, DOTNET);
    assert_found(
        LeakKind::StackTrace,
        "{\"type\":\"System.InvalidOperationException\"}",
    );
    assert_found(
        LeakKind::StackTrace,
        "--- End of stack trace from previous location ---",
    );
}

#[test]
fn go_panics_are_found() {
    assert_found(LeakKind::StackTrace, GO);
    assert_found(LeakKind::StackTrace, "goroutine 42 [chan receive]:");
    assert_found(LeakKind::StackTrace, "\t/go/src/app/handler.go:88 +0x2f4");
}

#[test]
fn php_errors_are_found() {
    assert_found(LeakKind::StackTrace, PHP);
    assert_found(
        LeakKind::StackTrace,
        "<br />\n<b>Fatal error</b>:  Call to undefined function f() in <b>/var/www/a.php</b> on line <b>3</b><br />",
    );
    assert_found(
        LeakKind::StackTrace,
        "Stack trace:\n#0 [internal function]: x()",
    );
}

#[test]
fn ruby_and_rust_traces_are_found() {
    assert_found(LeakKind::StackTrace, RUBY);
    assert_found(
        LeakKind::StackTrace,
        "\tfrom /app/lib/shop.rb:12:in 'Shop#total'",
    );
    assert_found(LeakKind::StackTrace, RUST);
}

#[test]
fn sql_errors_are_found() {
    for sample in [
        "You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version for the right syntax to use near ''1'' at line 1",
        "Unknown column 'adminx' in 'where clause'",
        "com.mysql.cj.jdbc.exceptions.CommunicationsException: Communications link failure",
        "ORA-00933: SQL command not properly ended",
        "ERROR:  syntax error at or near \"FROM\"\nLINE 1: SELECT * FROM FROM orders",
        "ERROR: unterminated quoted string at or near \"'1\"",
        "org.postgresql.util.PSQLException: ERROR: relation \"x\" does not exist",
        "PG::UndefinedTable: ERROR:  relation \"orders\" does not exist",
        "psycopg2.errors.UndefinedColumn: column \"x\" does not exist",
        "psycopg2.OperationalError: could not connect to server",
        "sqlalchemy.exc.ProgrammingError: (psycopg2.errors.SyntaxError)",
        "django.db.utils.IntegrityError: UNIQUE constraint failed: auth_user.username",
        "SQLSTATE[42000]: Syntax error or access violation: 1064",
        "SQLite3::SQLException: no such table: orders",
        "sqlite3.OperationalError: no such column: x",
        "SqliteError: [SQLITE_ERROR] SQL error or missing database",
        "near \"FROM\": syntax error",
        "Unclosed quotation mark after the character string ''.",
        "Incorrect syntax near the keyword 'FROM'.",
        "Microsoft OLE DB Provider for SQL Server error '80040e14'",
        "System.Data.SqlClient.SqlException (0x80131904): Invalid object name 'Orders'.",
        "java.sql.SQLSyntaxErrorException: Table 'shop.orders' doesn't exist",
        "java.sql.SQLException: Access denied for user 'app'@'10.0.0.3'",
    ] {
        assert_found(LeakKind::SqlError, sample);
    }
}

#[test]
fn private_keys_are_found() {
    for header in [
        "-----BEGIN PRIVATE KEY-----",
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----BEGIN EC PRIVATE KEY-----",
        "-----BEGIN DSA PRIVATE KEY-----",
        "-----BEGIN OPENSSH PRIVATE KEY-----",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----",
    ] {
        assert_found(
            LeakKind::PrivateKey,
            &format!("{header}\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n"),
        );
    }
    assert_found(
        LeakKind::PrivateKey,
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n",
    );
}

#[test]
fn every_signal_is_proven_by_a_sample() {
    // A pattern that no sample matches is dead (a typo, a wrong escape): this keeps each one
    // honest. The samples are the ones the tests above use.
    let s = scanner();
    let samples = [
        JAVA,
        PYTHON,
        NODE,
        DOTNET,
        GO,
        PHP,
        RUBY,
        RUST,
        "Exception in thread \"main\" java.lang.NullPointerException",
        "Caused by: org.hibernate.exception.ConstraintViolationException",
        "    at /app/server.js:40:7",
        "    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
        "--- End of stack trace from previous location ---",
        "You have an error in your SQL syntax",
        "Unknown column 'adminx' in 'where clause'",
        "com.mysql.cj.jdbc.exceptions.CommunicationsException",
        "ORA-00933: SQL command not properly ended",
        "syntax error at or near \"FROM\"",
        "unterminated quoted string at or near \"'1\"",
        "org.postgresql.util.PSQLException",
        "PG::UndefinedTable",
        "psycopg2.errors.UndefinedColumn",
        "django.db.utils.IntegrityError",
        "SQLSTATE[42000]",
        "SQLite3::SQLException",
        "sqlite3.OperationalError",
        "[SQLITE_ERROR]",
        "near \"FROM\": syntax error",
        "Unclosed quotation mark after the character string",
        "Incorrect syntax near 'x'",
        "Microsoft OLE DB Provider for ODBC Drivers",
        "System.Data.SqlClient.SqlException",
        "java.sql.SQLException",
        "-----BEGIN RSA PRIVATE KEY-----",
        "PuTTY-User-Key-File-2: ssh-rsa",
    ];
    let mut proven = vec![false; s.kinds.len()];
    for sample in samples {
        let mut matched = regex_automata::PatternSet::new(s.signals.pattern_len());
        s.signals
            .which_overlapping_matches(&sample.as_bytes().into(), &mut matched);
        for id in matched.iter() {
            proven[id.as_usize()] = true;
        }
    }
    let dead: Vec<String> = signals()
        .into_iter()
        .zip(proven)
        .filter(|(_, proven)| !proven)
        .map(|((_, pattern), _)| pattern)
        .collect();
    assert!(dead.is_empty(), "signals no sample matches: {dead:#?}");
}

#[test]
fn the_most_sensitive_kind_wins_when_a_trace_carries_an_sql_error() {
    let s = scanner();
    let trace = "java.sql.SQLException: syntax\n\tat com.x.Dao.find(Dao.java:9)\n";
    assert_eq!(s.scan(trace.as_bytes()), Some(LeakKind::SqlError));
    let both = "-----BEGIN PRIVATE KEY-----\nTraceback (most recent call last):\n";
    assert_eq!(s.scan(both.as_bytes()), Some(LeakKind::PrivateKey));
}

#[test]
fn kinds_have_stable_names() {
    assert_eq!(LeakKind::StackTrace.as_str(), "stack-trace");
    assert_eq!(LeakKind::SqlError.as_str(), "sql-error");
    assert_eq!(LeakKind::PrivateKey.as_str(), "private-key");
}

#[test]
fn ordinary_orders_are_not_leaks() {
    assert_clean(
        r#"{"orders":[{"id":"ord_81","status":"shipped","placed_at":"2024-05-02T10:42:00Z",
        "items":[{"sku":"EXC-BIKE-28","name":"Exception Bike","price":1299.0,"qty":1},
        {"sku":"SYS-ERR","name":"System Error T-shirt (size L)","price":19.9,"qty":2}],
        "shipping":{"line1":"12 Station Road","line2":"Flat 3","city":"Leeds","note":"Leave at the back door (gate code 4:12)"}}]}"#,
    );
}

#[test]
fn user_profiles_are_not_leaks() {
    assert_clean(
        r#"{"id":42,"name":"Ada Lovelace","email":"ada@example.com","role":"admin",
        "bio":"Engineer at Acme (since 2019). Speaker at RustConf, PyCon and GopherCon. Ran the Python track, File 3, line 4.",
        "links":{"site":"https://ada.example.com/index.php","cv":"/files/cv.pdf"},
        "thread":"general","last_seen":"2024-05-02T10:42:00+01:00"}"#,
    );
}

#[test]
fn text_that_mentions_at_and_line_is_not_a_trace() {
    assert_clean(
        r#"{"directions":"Take the bus at 10:42 on line 7, get off at Main St (stop 12:3).\nThe office is at /floor 2 (room 4:5).",
        "schedule":"Meet at Central Station (platform 3:15)","tip":"at the end of the line, turn left",
        "quote":"Exception in thread of conversation","release":"goroutine scheduler improvements",
        "faq":"What is the error in your SQL? Learn SQL syntax in 10 minutes.","rating":"PG-13","flight":"ORA-12345"}"#,
    );
}

#[test]
fn markdown_docs_about_keys_are_not_a_private_key() {
    assert_clean(
        "{\"title\":\"Rotating keys\",\"body\":\"# Rotating keys\\n\\nNever share your **private key**. \
        Generate a private key with `ssh-keygen -t ed25519`, then paste the public key (not the \
        private key) below. A PEM file begins with a BEGIN line.\\n\\n- RSA private key: 4096 bits\\n\"}",
    );
}

#[test]
fn the_stream_keeps_no_more_than_the_overlap() {
    let s = scanner();
    let mut scan = s.stream();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..4 {
        assert_eq!(scan.feed(&chunk), None);
        assert!(scan.seam.len() <= OVERLAP);
    }
    for _ in 0..1000 {
        scan.feed(b"xyz");
        assert!(scan.seam.len() <= OVERLAP);
    }
    assert!(scan.seam.capacity() <= 4 * OVERLAP);
}

#[test]
fn a_found_leak_stays_found() {
    let s = scanner();
    let mut scan = s.stream();
    assert_eq!(
        scan.feed(b"ORA-00942: table or view does not exist"),
        Some(LeakKind::SqlError)
    );
    assert_eq!(scan.feed(b"{}"), Some(LeakKind::SqlError));
    assert_eq!(scan.found(), Some(LeakKind::SqlError));
}

#[test]
fn throughput_whole_body_against_stream() {
    // Prints MB/s for the record (debug builds are much slower than release); no timing
    // assertion, which would make the test depend on the machine.
    let s = scanner();
    let record = r#"{"id":"ord_81","status":"shipped","customer":{"name":"Ada","email":"ada@example.com"},"items":[{"sku":"A-1","name":"Exception Bike","qty":1}],"note":"deliver at 10:42 at the back, line 2"},"#;
    let mut body = String::from("[");
    while body.len() < 4 << 20 {
        body.push_str(record);
    }
    body.push_str("{}]");
    let body = body.into_bytes();
    let mb = body.len() as f64 / 1e6;

    let started = Instant::now();
    assert_eq!(s.scan(&body), None);
    let whole = mb / started.elapsed().as_secs_f64();

    let mut rates = Vec::new();
    for size in [1024, 16 * 1024] {
        let started = Instant::now();
        assert_eq!(stream_in_chunks(&s, &body, size), None);
        rates.push((size, mb / started.elapsed().as_secs_f64()));
    }

    // A body of near misses: many "at " and "File " that start a signal and then fail.
    let near = "    at Object.method [native code] File \"x\", line ".repeat(80_000);
    let started = Instant::now();
    assert_eq!(s.scan(near.as_bytes()), None);
    let near_rate = near.len() as f64 / 1e6 / started.elapsed().as_secs_f64();

    println!("leak scan, whole body: {whole:.1} MB/s");
    for (size, rate) in rates {
        println!("leak scan, stream of {size}-byte chunks: {rate:.1} MB/s");
    }
    println!("leak scan, near misses: {near_rate:.1} MB/s");
}
