//! Compiles OpenAPI contracts and says how long each took, how many operations it has, or why it
//! was refused: the measurement behind "Real contracts" in docs/validation.md.
//!
//! Usage: `compile_spec [--max-refs N] [--max-bytes N] FILE...` (peak memory: run it under
//! `/usr/bin/time -v`, one file at a time).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use rampart::policy::validate::spec::{CompileOptions, Spec};

fn main() -> ExitCode {
    let mut options = CompileOptions::default();
    let mut files: Vec<PathBuf> = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let number = |value: Option<String>| value.and_then(|v| v.parse::<usize>().ok());
        match arg.as_str() {
            "--max-refs" => match number(args.next()) {
                Some(n) => options.max_refs = n,
                None => return usage(),
            },
            "--max-bytes" => match number(args.next()) {
                Some(n) => options.max_spec_bytes = n,
                None => return usage(),
            },
            _ => files.push(PathBuf::from(arg)),
        }
    }
    if files.is_empty() {
        return usage();
    }
    let mut refused = 0usize;
    for file in &files {
        let start = Instant::now();
        let result = Spec::compile_file(file, &options);
        let elapsed = start.elapsed();
        match result {
            Ok(spec) => println!(
                "compiled {} operations in {:.3} s: {}",
                spec.operation_count(),
                elapsed.as_secs_f64(),
                file.display()
            ),
            Err(issues) => {
                refused += 1;
                println!(
                    "refused ({} issues) in {:.3} s: {}",
                    issues.len(),
                    elapsed.as_secs_f64(),
                    file.display()
                );
                for issue in issues.iter().take(10) {
                    println!("    {issue}");
                }
            }
        }
    }
    println!("{} compiled, {refused} refused", files.len() - refused);
    ExitCode::SUCCESS
}

fn usage() -> ExitCode {
    eprintln!("usage: compile_spec [--max-refs N] [--max-bytes N] FILE...");
    ExitCode::from(2)
}
