//! Conformance suites (being written).
