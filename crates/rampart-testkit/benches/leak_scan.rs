//! The response leak scan, per body: Rampart's scanner (regex's lazy DFA, no literal prefilter)
//! beside the same signals on `regex::bytes::RegexSet` (the lazy DFA behind an Aho-Corasick
//! prefilter), on a short JSON answer, a 60 KB JSON list and 60 KB of prose. Instruction counts
//! of the same comparison are in docs/benchmarks.md (issue 10, thirteenth round).
//! Run: `cargo bench -p rampart-testkit --bench leak_scan`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a benchmark fails loudly

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rampart::policy::mask::leak::{self, LeakScanner};

fn body(unit: &[u8], size: usize) -> Vec<u8> {
    let mut body = br#"{"ok":true,"service":"bench","items":[1,2,3]}"#.to_vec();
    while body.len() < size {
        body.extend_from_slice(unit);
    }
    body.truncate(size);
    body
}

fn scan(c: &mut Criterion) {
    let scanner = LeakScanner::new().unwrap();
    let set = regex::bytes::RegexSetBuilder::new(leak::patterns())
        .unicode(false)
        .dfa_size_limit(8 << 20)
        .build()
        .unwrap();
    let order = br#"{"name":"Order 1234 at the store","price":12.5,"note":"delivered"},"#;
    let prose = b"The meeting at noon was moved; the notes are at the usual place, line 3. ";
    let bodies = [
        ("json_50B", body(order, 50)),
        ("json_60KB", body(order, 60_000)),
        ("prose_60KB", body(prose, 60_000)),
    ];
    let mut group = c.benchmark_group("leak_scan");
    for (name, body) in &bodies {
        assert_eq!(scanner.scan(body), None, "{name} is clean");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("rampart", name), body, |b, body| {
            b.iter(|| scanner.scan(body));
        });
        group.bench_with_input(BenchmarkId::new("regex_set", name), body, |b, body| {
            b.iter(|| set.is_match(body));
        });
    }
    group.finish();
}

criterion_group!(benches, scan);
criterion_main!(benches);
