//! Leak scan: a response body that carries a stack trace, SQL error text or a private key.
//!
//! Threat (OWASP API3, excessive data exposure): an upstream that fails badly answers with its
//! internals (a framework's debug page, an exception serialized into a JSON error, a key file
//! served by mistake), even with a 200 status that `must_mask` does not catch. Those internals
//! name libraries, file paths, queries and sometimes secrets, which is how an attacker picks an
//! exploit. The gateway scans every response body and masks a body that matches.
//!
//! Invariants: every signal is a marker that the runtime itself prints and that an ordinary JSON
//! API does not produce (high precision: a product called "Exception Bike" or a sentence that
//! says "at" and "line" does not match); all signals are compiled once into one
//! multi-pattern regex (`regex_automata::meta`, the engine of `regex::bytes::RegexSet`), which
//! runs in time linear in the body (finite automata, no backtracking, so no pattern can be made
//! catastrophic by its input); every repetition that could
//! cross a line is bounded, so a match stays local. Signals match both raw text and the same text
//! JSON-encoded (an exception serialized into a JSON string has its newlines as `\n`, its tabs as
//! `\t` and its quotes as `\"`). The streaming form ([`LeakScan`]) never holds more than
//! [`OVERLAP`] bytes of earlier chunks, so a marker split across two chunks is still found.

use regex_automata::meta::{self, Regex};
use regex_automata::nfa::thompson::WhichCaptures;
use regex_automata::util::syntax;
use regex_automata::{MatchKind, PatternSet};

/// What kind of internals a response body leaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeakKind {
    StackTrace,
    SqlError,
    PrivateKey,
}

impl LeakKind {
    /// A stable name for the audit log and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            LeakKind::StackTrace => "stack-trace",
            LeakKind::SqlError => "sql-error",
            LeakKind::PrivateKey => "private-key",
        }
    }

    /// When one body matches several kinds, the most sensitive one is reported.
    fn severity(self) -> u8 {
        match self {
            LeakKind::StackTrace => 0,
            LeakKind::SqlError => 1,
            LeakKind::PrivateKey => 2,
        }
    }
}

/// How many bytes of the previous chunks the streaming scan keeps. Every signal that matters is
/// shorter than this (the longest are Java and .NET frames with long class names); a signal longer
/// than this and split across two chunks may be missed.
pub const OVERLAP: usize = 512;

/// Where a stack frame line starts: the start of the body, whitespace, the end of an HTML tag
/// (`<br>` in debug pages), or a JSON escape (`\n`, `\r`, `\t`) in a serialized trace. A word
/// boundary would not do: in JSON `\tat com.x` the `t` before `at` is a word character.
const FRAME: &str = r"(?:^|[\s>]|\\[nrt])at ";

/// Where a marker that starts with a word starts: a word boundary, or a JSON escape right before
/// it (`\nSystem.NullReferenceException`, where `n` is a word character).
const WORD: &str = r"(?:\b|\\[nrt])";

/// A line break, raw or JSON-encoded.
const NEWLINE: &str = r"(?:\r?\n|\\r\\n|\\n)";

/// The signals, each with the runtime that prints it. Patterns are compiled with Unicode off:
/// `\w`, `\s` and `\b` are ASCII, classes match bytes, and the lazy DFA never has to give up on a
/// non-ASCII byte.
fn signals() -> Vec<(LeakKind, String)> {
    use LeakKind::{PrivateKey, SqlError, StackTrace};
    let frame = |rest: &str| format!("{FRAME}{rest}");
    let word = |rest: &str| format!("{WORD}{rest}");
    vec![
        // --- Stack traces ---
        // Java/JVM frame: `at com.foo.Bar.method(Bar.java:42)`, with an optional module
        // (`java.base/`), also Kotlin, Scala, Groovy and Clojure sources.
        (
            StackTrace,
            frame(
                r"(?:[\w.$@]{1,64}/{1,2})?(?:[A-Za-z_$][\w$]*\.){1,32}[\w$<>]{1,128}\((?:[\w$]{1,128}\.(?:java|kt|scala|groovy|clj):\d{1,7}|Native Method|Unknown Source)\)",
            ),
        ),
        // Java: the uncaught-exception header `Exception in thread "main" java.lang.X`.
        (
            StackTrace,
            r#"Exception in thread \\?"[^"\\\r\n]{1,64}\\?" (?:[\w$]{1,64}\.){1,16}[\w$]{0,64}(?:Exception|Error)"#.to_owned(),
        ),
        // Java: a chained cause `Caused by: java.sql.SQLException: ...` (any package).
        (
            StackTrace,
            r"Caused by: (?:[a-z][\w$]{0,64}\.){1,16}[A-Z][\w$]{0,128}(?:Exception|Error|Throwable)\b".to_owned(),
        ),
        // Python: the traceback header.
        (StackTrace, r"Traceback \(most recent call last\):".to_owned()),
        // Python: a frame `File "/app/x.py", line 3, in handler`.
        (
            StackTrace,
            r#"File \\?"[^"\r\n]{1,256}\.pyx?\\?", line \d{1,7}, in "#.to_owned(),
        ),
        // Node.js: a frame with a location `at Object.<anonymous> (/app/x.js:1:2)`.
        (
            StackTrace,
            frame(
                r#"[^()\\\r\n"]{1,128} \((?:/|[A-Za-z]:\\{1,2}|file:///)[^()\r\n"]{1,256}\.(?:m?js|cjs|ts|jsx|tsx):\d{1,7}:\d{1,7}\)"#,
            ),
        ),
        // Node.js: an anonymous frame `at /app/x.js:1:2`.
        (
            StackTrace,
            frame(
                r#"(?:/|[A-Za-z]:\\{1,2}|file:///)[^()\s"]{1,256}\.(?:m?js|cjs|ts|jsx|tsx):\d{1,7}:\d{1,7}"#,
            ),
        ),
        // Node.js: the event loop frame at the bottom of every async trace.
        (
            StackTrace,
            frame(r"(?:async )?(?:process\.)?processTicksAndRejections \("),
        ),
        // .NET: a frame with its source `at Foo.Bar() in C:\src\x.cs:line 42`.
        (
            StackTrace,
            frame(
                r#"[\w.`<>\[\],+|]{1,256}\([^()\r\n]{0,256}\) in [^\r\n"]{1,256}\.(?:cs|vb|fs):line \d{1,7}"#,
            ),
        ),
        // .NET: an exception type of the base library `System.NullReferenceException`.
        (
            StackTrace,
            word(r"System\.(?:[A-Z]\w{0,64}\.){0,8}[A-Z]\w{0,64}Exception\b"),
        ),
        // .NET: the separator between async parts of a trace.
        (
            StackTrace,
            r"--- End of stack trace from previous location".to_owned(),
        ),
        // Go: the goroutine header of a panic or of `debug.Stack()`, `goroutine 1 [running]:`.
        (StackTrace, r"goroutine \d{1,10} \[[\w ,]{1,64}\]:".to_owned()),
        // Go: a frame's location `/app/main.go:12 +0x1d`.
        (StackTrace, r"\.go:\d{1,7} \+0x[0-9a-f]{1,16}\b".to_owned()),
        // PHP: an error's location `... in /var/www/x.php on line 3` (HTML or text).
        (
            StackTrace,
            r"\.php(?:</b>)? on line (?:<b>)?\d{1,7}".to_owned(),
        ),
        // PHP: an uncaught exception's trace `Stack trace:\n#0 /var/www/...`.
        (
            StackTrace,
            format!(r"Stack trace:(?:<br ?/?>)?{NEWLINE}#0 "),
        ),
        // Ruby: a backtrace line `from /app/x.rb:12:in 'block in call'` (backtick before 3.4).
        (StackTrace, r"\.rb:\d{1,7}:in [`']".to_owned()),
        // Rust: the panic message `thread 'main' panicked at src/main.rs:2:5`.
        (
            StackTrace,
            r"thread '[^'\r\n]{1,64}' panicked at ".to_owned(),
        ),
        // --- SQL errors ---
        // MySQL / MariaDB: the parser's error.
        (SqlError, r"You have an error in your SQL syntax".to_owned()),
        // MySQL / MariaDB: an unknown column, naming the clause.
        (
            SqlError,
            r"Unknown column '[^'\r\n]{1,128}' in '(?:field list|where clause|order clause|on clause|having clause|group statement)'".to_owned(),
        ),
        // MySQL Connector/J.
        (SqlError, word(r"com\.mysql\.(?:cj\.)?jdbc\b")),
        // Oracle: an error code with its message, `ORA-00933: SQL command not properly ended`.
        (SqlError, word(r"ORA-\d{5}:")),
        // PostgreSQL: the parser's errors.
        (
            SqlError,
            r#"syntax error at or near \\?""#.to_owned(),
        ),
        (
            SqlError,
            r"unterminated quoted string at or near".to_owned(),
        ),
        // PostgreSQL JDBC driver.
        (SqlError, word(r"org\.postgresql\.util\.PSQLException\b")),
        // Ruby `pg` gem: `PG::SyntaxError`, `PG::UndefinedTable`.
        (SqlError, word(r"PG::[A-Z][A-Za-z]{2,64}\b")),
        // Python psycopg 2 and 3: `psycopg2.errors.SyntaxError`, `psycopg2.OperationalError`.
        (
            SqlError,
            word(r"psycopg2?\.(?:errors\.|[A-Z]\w{0,64}Error\b)"),
        ),
        // Python SQLAlchemy and Django wrap the driver's error.
        (
            SqlError,
            word(r"(?:sqlalchemy\.exc|django\.db\.utils)\.[A-Z]\w{0,64}Error\b"),
        ),
        // PHP PDO: `SQLSTATE[42000]: Syntax error or access violation`.
        (SqlError, r"SQLSTATE\[".to_owned()),
        // SQLite: Ruby, Python and C API errors.
        (SqlError, r"SQLite3::SQLException".to_owned()),
        (
            SqlError,
            word(r"sqlite3\.(?:OperationalError|IntegrityError|ProgrammingError|DatabaseError)\b"),
        ),
        (SqlError, r"\[SQLITE_ERROR\]".to_owned()),
        (
            SqlError,
            r#"near \\?"[^"\\\r\n]{1,64}\\?": syntax error"#.to_owned(),
        ),
        // SQL Server: the parser's errors and the client libraries.
        (
            SqlError,
            r"Unclosed quotation mark after the character string".to_owned(),
        ),
        (
            SqlError,
            r"Incorrect syntax near (?:the keyword )?'".to_owned(),
        ),
        (
            SqlError,
            r"Microsoft OLE DB Provider for (?:SQL Server|ODBC Drivers)".to_owned(),
        ),
        (
            SqlError,
            word(r"(?:System|Microsoft)\.Data\.SqlClient\.SqlException\b"),
        ),
        // JDBC: `java.sql.SQLException`, `java.sql.SQLSyntaxErrorException`.
        (SqlError, word(r"java\.sql\.SQL\w{0,64}Exception\b")),
        // --- Private keys ---
        // PEM (PKCS#1, SEC1, PKCS#8, OpenSSH, encrypted PKCS#8) and OpenPGP armor.
        (
            PrivateKey,
            r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----".to_owned(),
        ),
        // PuTTY key files (`PuTTY-User-Key-File-3: ssh-ed25519`).
        (PrivateKey, r"PuTTY-User-Key-File-\d{1,2}: ".to_owned()),
    ]
}

/// The signals' patterns, in order: what the scanner compiles (the `leak_scan` benchmark runs
/// them on `regex::bytes::RegexSet` too, to compare the two configurations).
pub fn patterns() -> impl Iterator<Item = String> {
    signals().into_iter().map(|(_, pattern)| pattern)
}

/// The compiled signals. Build once (at startup or reload) and share: scanning takes `&self`.
#[derive(Debug, Clone)]
pub struct LeakScanner {
    signals: Regex,
    kinds: Vec<LeakKind>,
}

impl LeakScanner {
    /// Compiles the signals. Fails only if a built-in pattern is malformed (a bug, which the unit
    /// tests catch), never because of input.
    pub fn new() -> Result<Self, Box<meta::BuildError>> {
        let (kinds, patterns): (Vec<LeakKind>, Vec<String>) = signals().into_iter().unzip();
        // As `regex::bytes::RegexSetBuilder` configures it (every pattern reported, no captures,
        // bytes), with one difference: no literal prefilter. The signals' literals are too many
        // and too short (`at ` in every frame) for a vectorized search, so the set's prefilter is
        // an Aho-Corasick automaton that walks every byte before the lazy DFA walks it again:
        // about 21 instructions a byte of JSON against 7.8 for the lazy DFA alone, whatever the
        // body (docs/benchmarks.md, issue 10, thirteenth round).
        let config = meta::Config::new()
            .match_kind(MatchKind::All)
            .utf8_empty(false)
            .which_captures(WhichCaptures::None)
            .auto_prefilter(false)
            .hybrid_cache_capacity(8 << 20);
        let signals = meta::Builder::new()
            .configure(config)
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .build_many(&patterns)
            .map_err(Box::new)?;
        Ok(Self { signals, kinds })
    }

    /// The most sensitive kind of leak the body shows, if any.
    pub fn scan(&self, body: &[u8]) -> Option<LeakKind> {
        // Most bodies match nothing: `is_match` stops at the first match and is the cheap search;
        // only a body that matches pays for finding every signal that matches.
        if !self.signals.is_match(body) {
            return None;
        }
        let mut found = PatternSet::new(self.signals.pattern_len());
        self.signals
            .which_overlapping_matches(&body.into(), &mut found);
        found
            .iter()
            .filter_map(|id| self.kinds.get(id.as_usize()).copied())
            .max_by_key(|kind| kind.severity())
    }

    /// A scan of a body that arrives in chunks.
    pub fn stream(&self) -> LeakScan<&Self> {
        LeakScan::over(self)
    }

    /// A scan that owns a share of the scanner (for a body that outlives the caller).
    pub fn stream_shared(self: &std::sync::Arc<Self>) -> LeakScan<std::sync::Arc<Self>> {
        LeakScan::over(self.clone())
    }
}

/// The streaming scan of one body: feed it each chunk in order.
///
/// It keeps the last [`OVERLAP`] bytes seen, and scans each chunk twice: the chunk itself, and the
/// seam (the kept bytes followed by the chunk's first `OVERLAP` bytes), where a marker split
/// across the two lies. It so holds at most `2 * OVERLAP` bytes, never a copy of a chunk.
/// A word boundary (`\b`) at the very start of a chunk or seam is judged without the byte before
/// it, which can only make a marker match there that a whole-body scan would have refused.
#[derive(Debug)]
pub struct LeakScan<S> {
    scanner: S,
    /// The last `OVERLAP` bytes of the body so far; during `feed`, followed by the seam's part of
    /// the new chunk.
    seam: Vec<u8>,
    found: Option<LeakKind>,
}

impl<S: std::ops::Deref<Target = LeakScanner>> LeakScan<S> {
    fn over(scanner: S) -> Self {
        Self {
            scanner,
            seam: Vec::with_capacity(2 * OVERLAP),
            found: None,
        }
    }

    /// Scans the next chunk. Once a leak is found, every later call reports it without scanning.
    pub fn feed(&mut self, chunk: &[u8]) -> Option<LeakKind> {
        if self.found.is_some() || chunk.is_empty() {
            return self.found;
        }
        let head = &chunk[..chunk.len().min(OVERLAP)];
        let had_tail = !self.seam.is_empty();
        self.seam.extend_from_slice(head);
        if had_tail {
            self.found = self.scanner.scan(&self.seam);
        }
        // A chunk no longer than the overlap lies whole in the seam, already scanned (unless
        // there was no tail, in which case the seam is the chunk).
        if self.found.is_none() && (chunk.len() > OVERLAP || !had_tail) {
            self.found = self.scanner.scan(chunk);
        }
        self.keep_tail(chunk);
        self.found
    }

    /// Whether a leak has been found so far.
    pub fn found(&self) -> Option<LeakKind> {
        self.found
    }

    /// Leaves the last `OVERLAP` bytes of the body in `seam`, which holds the old tail followed by
    /// the chunk's head.
    fn keep_tail(&mut self, chunk: &[u8]) {
        if chunk.len() >= OVERLAP {
            self.seam.clear();
            self.seam.extend_from_slice(&chunk[chunk.len() - OVERLAP..]);
        } else {
            // The head is the whole chunk: drop the oldest bytes beyond the overlap.
            let excess = self.seam.len().saturating_sub(OVERLAP);
            self.seam.drain(..excess);
        }
    }
}

#[cfg(test)]
mod tests;
