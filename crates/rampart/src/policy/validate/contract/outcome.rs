//! `rampart_validation_total{route, operation, outcome}`: one counter per operation and outcome,
//! registered when the contract is built (the operations are the contract's, so the label set
//! is bounded), so a request never builds a metric key.

use metrics::Counter;

use super::Spec;

/// The counters of one route's contract, by operation key; the last entry counts requests that
/// matched no operation.
pub(super) struct Counters {
    by_operation: Vec<[Counter; 3]>,
}

const PASSED: usize = 0;
const REFUSED: usize = 1;
const REPORTED: usize = 2;

impl Counters {
    pub(super) fn new(spec: &Spec, route: &str) -> Self {
        let make = |operation: &str| {
            ["passed", "refused", "reported"].map(|outcome| {
                metrics::counter!(
                    "rampart_validation_total",
                    "route" => route.to_owned(),
                    "operation" => operation.to_owned(),
                    "outcome" => outcome,
                )
            })
        };
        let mut by_operation: Vec<[Counter; 3]> =
            spec.operations().map(|op| make(op.id())).collect();
        by_operation.push(make("-"));
        Self { by_operation }
    }

    fn get(&self, key: Option<usize>, outcome: usize) -> Option<&Counter> {
        let index = key.unwrap_or(self.by_operation.len().saturating_sub(1));
        self.by_operation
            .get(index)
            .or_else(|| self.by_operation.last())
            .map(|c| &c[outcome])
    }

    pub(super) fn passed(&self, key: Option<usize>) {
        if let Some(c) = self.get(key, PASSED) {
            c.increment(1);
        }
    }

    pub(super) fn refused(&self, key: Option<usize>) {
        if let Some(c) = self.get(key, REFUSED) {
            c.increment(1);
        }
    }

    pub(super) fn reported(&self, key: Option<usize>) {
        if let Some(c) = self.get(key, REPORTED) {
            c.increment(1);
        }
    }
}
